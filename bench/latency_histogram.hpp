// latency_histogram.hpp — a fixed-size, log-bucketed histogram of latencies in
// nanoseconds for the load generator, in the spirit of HdrHistogram.
//
// Values are grouped by their highest set bit (the "octave") and, within an
// octave, into k_sub_buckets linear slices, so every bucket is at most
// 1/k_sub_buckets (~1.6 %) wide relative to the values it holds. Values below
// k_sub_buckets get one bucket each. Recording is a couple of shifts and an
// increment: no allocation, no branches on the data beyond the octave, so it
// can run for every message. Percentiles report the upper edge of the bucket
// that holds the requested rank (a conservative estimate).
//
// Thread-safety: none; keep one per loop thread and merge() them at the end.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace switchboard::bench {

class latency_histogram {
 public:
  static constexpr unsigned k_sub_bits = 6;
  static constexpr std::uint64_t k_sub_buckets = std::uint64_t{1} << k_sub_bits;
  // Octaves k_sub_bits..63 each get k_sub_buckets buckets; below that, one per value.
  static constexpr std::size_t k_buckets = (64 - k_sub_bits + 1) * k_sub_buckets;

  // Adds one sample of `value` nanoseconds.
  void record(std::uint64_t value) noexcept {
    ++counts_[index_of(value)];
    ++total_;
    max_ = std::max(max_, value);
  }

  // Adds every sample of `other`.
  void merge(const latency_histogram& other) noexcept {
    for (std::size_t i = 0; i < k_buckets; ++i) counts_[i] += other.counts_[i];
    total_ += other.total_;
    max_ = std::max(max_, other.max_);
  }

  // The value at or below which a fraction `q` (0..1) of the samples lie,
  // rounded up to its bucket's upper edge and capped at the largest sample.
  // 0 when empty.
  [[nodiscard]] std::uint64_t percentile(double q) const noexcept {
    if (total_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_) + 0.5);
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < k_buckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(upper_edge(i), max_);
    }
    return max_;
  }

  [[nodiscard]] std::uint64_t count() const noexcept { return total_; }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }

 private:
  static std::size_t index_of(std::uint64_t value) noexcept {
    if (value < k_sub_buckets) return static_cast<std::size_t>(value);
    const unsigned octave = 63 - static_cast<unsigned>(std::countl_zero(value));  // >= k_sub_bits
    const unsigned shift = octave - k_sub_bits;
    // The top k_sub_bits + 1 bits of the value, minus the leading one, pick the slice.
    const std::uint64_t slice = (value >> shift) - k_sub_buckets;
    return static_cast<std::size_t>((shift + 1) * k_sub_buckets + slice);
  }

  static std::uint64_t upper_edge(std::size_t index) noexcept {
    if (index < k_sub_buckets) return index;
    const std::uint64_t shift = index / k_sub_buckets - 1;
    const std::uint64_t slice = index % k_sub_buckets;
    return ((k_sub_buckets + slice + 1) << shift) - 1;
  }

  std::array<std::uint64_t, k_buckets> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace switchboard::bench
