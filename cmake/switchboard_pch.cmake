# switchboard_precompile(<target> [GTEST] [SIMDJSON] [WITHOUT <file>...])
#
# Precompiles the headers most of <target>'s translation units parse: the
# standard library's containers and utilities, plus GoogleTest or simdjson
# when asked. Parsing them is much of each file's compile time (a
# src/realtime file spends ~2 of its ~4 s on them at -O3), and a clean build
# now parses them once per target instead of once per file.
#
# Only for targets of several files (one file gains nothing), and not where
# the time is instantiation rather than parsing: the CLI11 commands of
# apps/switchboard compiled no faster with CLI11 precompiled.
#
# WITHOUT: files compiled without it. When the standard headers come
# precompiled, GCC 12 reports its known false -Warray-bounds inside
# libstdc++'s char_traits.h for some std::string concatenations (from source,
# a system header, it stays silent); the few test files that build long
# strings with `+` are listed there rather than the warning silenced for
# every file.
#
# Public headers are still compiled alone, without it (header_alone in
# tests/CMakeLists.txt). A private header or source file that forgets a
# standard #include compiles here and fails with -DSWITCHBOARD_PCH=OFF:
# configure with it to check (the tree builds either way today).
#
# With ccache, set CCACHE_SLOPPINESS=pch_defines,time_macros or it compiles
# the files that use the header instead of caching them.
option(SWITCHBOARD_PCH "Precompile the common headers of multi-file targets" ON)

function(switchboard_precompile target)
  if(NOT SWITCHBOARD_PCH)
    return()
  endif()
  cmake_parse_arguments(PARSE_ARGV 1 arg "GTEST;SIMDJSON" "" "WITHOUT")
  set(headers
    <algorithm> <array> <atomic> <chrono> <cstddef> <cstdint> <cstring> <deque>
    <functional> <map> <memory> <optional> <span> <string> <string_view>
    <system_error> <unordered_map> <utility> <variant> <vector>)
  if(arg_GTEST)
    list(APPEND headers <gtest/gtest.h>)
  endif()
  if(arg_SIMDJSON)
    list(APPEND headers <simdjson.h>)
  endif()
  target_precompile_headers(${target} PRIVATE ${headers})
  if(arg_WITHOUT)
    set_source_files_properties(${arg_WITHOUT} TARGET_DIRECTORY ${target}
      PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
  endif()
endfunction()
