// close_code.hpp is constexpr throughout; this unit exists so the header is
// compiled as part of the library even where no one else includes it.
#include <switchboard/protocol/close_code.hpp>

namespace switchboard::protocol {
static_assert(is_valid_on_wire(1000) && !is_valid_on_wire(1005) && is_valid_on_wire(4999));
}  // namespace switchboard::protocol
