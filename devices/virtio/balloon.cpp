#include "devices/virtio/balloon.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>

namespace hvmm::virtio {

using namespace balloon;

Balloon::Balloon(const GuestMemory& mem, BalloonBackend& backend, Options opt)
    : mem_(mem), backend_(backend), opt_(opt), page_map_(mem) {
  if (!std::has_single_bit(opt.queue_size) || opt.queue_size < kMinReportingQueue)
    throw std::invalid_argument("virtio-balloon: queue size must be a power of two >= 32");
  offered_ = (opt.stats ? kFeatureStatsVq : 0) | (opt.deflate_on_oom ? kFeatureDeflateOnOom : 0) |
             (opt.reporting ? kFeatureReporting : 0) | (opt.huge_pages ? kFeatureHvmmHugePages : 0);
  layout_queues(offered_);
  pages_.reserve(kMaxPfnsPerChain);
}

void Balloon::layout_queues(uint64_t features) {
  roles_ = {Role::inflate, Role::deflate};
  if (features & kFeatureStatsVq) roles_.push_back(Role::stats);
  if (features & kFeatureReporting) roles_.push_back(Role::reporting);
}

std::optional<unsigned> Balloon::queue_index(Role r) const {
  for (unsigned i = 0; i < roles_.size(); ++i)
    if (roles_[i] == r) return i;
  return std::nullopt;
}

bool Balloon::accept_features(uint64_t features) {
  accepted_ = features;
  layout_queues(features);
  return true;
}

uint16_t Balloon::queue_max_size(unsigned index) const {
  return index < roles_.size() ? opt_.queue_size : 0;
}

void Balloon::read_config(uint32_t offset, uint8_t* data, unsigned len) {
  Config c{target_units(), actual_, 0, 0};
  for (unsigned i = 0; i < len; ++i) {
    uint64_t o = uint64_t(offset) + i;
    data[i] = o < sizeof c ? reinterpret_cast<const uint8_t*>(&c)[o] : 0;
  }
}

void Balloon::write_config(uint32_t offset, const uint8_t* data, unsigned len) {
  // Only `actual` is the driver's to write; other bytes are ignored.
  uint8_t bytes[4];
  std::memcpy(bytes, &actual_, 4);
  for (unsigned i = 0; i < len; ++i) {
    uint64_t o = uint64_t(offset) + i;
    if (o >= offsetof(Config, actual) && o < offsetof(Config, actual) + 4)
      bytes[o - offsetof(Config, actual)] = data[i];
  }
  std::memcpy(&actual_, bytes, 4);
}

void Balloon::queue_notify(unsigned index) {
  if (!transport_ || index >= roles_.size()) return;
  Virtqueue* q = transport_->queue(index);
  if (!q) return;
  switch (roles_[index]) {
    case Role::inflate: process_pfns(*q, index, true); break;
    case Role::deflate: process_pfns(*q, index, false); break;
    case Role::stats: process_stats(*q, index); break;
    case Role::reporting: process_reports(*q, index); break;
  }
}

void Balloon::process_pfns(Virtqueue& q, unsigned index, bool inflate) {
  bool pushed = false;
  for (;;) {
    auto r = q.pop(chain_);
    if (r == Virtqueue::Pop::error) ++counters_.bad_chains;
    if (r != Virtqueue::Pop::chain) break;
    ChainReader in(mem_, chain_);
    pages_.clear();
    uint32_t batch[256];
    uint64_t seen = 0;
    for (;;) {
      size_t got = in.read(batch, sizeof batch);
      size_t n = got / 4;
      if (got % 4) ++counters_.invalid_pfns;  // trailing partial PFN (only at the chain's end)
      for (size_t i = 0; i < n; ++i, ++seen) {
        if (seen >= kMaxPfnsPerChain) {
          ++counters_.ignored_pfns;
          continue;
        }
        uint64_t gpa;
        if (!pfn_gpa(batch[i], gpa)) {
          ++counters_.invalid_pfns;
          continue;
        }
        pages_.push_back(gpa);
      }
      if (got < sizeof batch) break;
      if (seen >= kMaxPfnsPerChain) {  // count the rest without reading it all
        uint64_t rest = chain_.readable_bytes() - seen * 4;
        counters_.ignored_pfns += rest / 4;
        break;
      }
    }
    flush_pages(pages_, inflate);
    q.push(chain_.head, 0);
    pushed = true;
  }
  if (pushed) transport_->notify_used(index);
}

bool Balloon::pfn_gpa(uint32_t pfn, uint64_t& gpa) const {
  gpa = uint64_t(pfn) << kPfnShift;
  // A huge page is named by its first 4 KiB frame: 2 MiB aligned, all of it in one RAM region (a
  // 2 MiB at the end of a region that is not 2 MiB aligned, or across the hole, is refused whole).
  if (huge() && gpa % kHugePageSize) return false;
  return mem_.contains(gpa, unit());
}

void Balloon::flush_pages(std::vector<uint64_t>& pages, bool inflate) {
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  const uint64_t unit = this->unit();
  size_t i = 0;
  while (i < pages.size()) {
    uint64_t start = pages[i], len = unit;
    // Extend while the next page follows directly and the run stays inside one region.
    while (i + 1 < pages.size() && pages[i + 1] == start + len && mem_.contains(start, len + unit)) {
      len += unit;
      ++i;
    }
    ++i;
    if (inflate) {
      inflate_run(start, len);
      counters_.inflated_pages += len / unit;
    } else {
      deflate_run(start, len);
      counters_.deflated_pages += len / unit;
    }
  }
}

void Balloon::inflate_run(uint64_t gpa, uint64_t len) {
  discard(gpa, len, BalloonBackend::Why::inflate);
  whole_.clear();
  page_map_.add(gpa, len, whole_);
  // Huge pages are discarded whole already; whole-frame discards are for the 4 KiB balloon only.
  if (huge() || !opt_.whole_frames) return;
  for (uint64_t frame : whole_) {
    ++counters_.whole_frame_discards;
    discard(frame, kHugePageSize, BalloonBackend::Why::frame);
  }
}

void Balloon::deflate_run(uint64_t gpa, uint64_t len) {
  page_map_.remove(gpa, len);
  backend_.deflate(gpa, len);
}

bool Balloon::discard(uint64_t gpa, uint64_t len, BalloonBackend::Why why) {
  ++counters_.discard_calls;
  bool ok = backend_.discard(gpa, len, why);
  if (!ok) ++counters_.discard_failures;
  return ok;
}

void Balloon::process_stats(Virtqueue& q, unsigned index) {
  // Protocol (§5.5.6.3): the driver queues one buffer; we keep it until we want fresh numbers,
  // then return it (request_stats) and the driver queues it again, refilled.
  bool pushed = false;
  for (;;) {
    auto r = q.pop(chain_);
    if (r == Virtqueue::Pop::error) ++counters_.bad_chains;
    if (r != Virtqueue::Pop::chain) break;
    if (stats_head_) {  // a second buffer: give the older one back rather than leak it
      ++counters_.extra_stats_buffers;
      q.push(*stats_head_, 0);
      pushed = true;
    }
    stats_head_ = chain_.head;
    ChainReader in(mem_, chain_);
    BalloonGuestStats s = guest_stats_;
    s.valid_mask = 0;
    uint8_t e[kStatEntrySize];
    for (uint32_t n = 0; n < kMaxStatsPerChain && in.read(e, sizeof e) == sizeof e; ++n) {
      uint16_t tag;
      uint64_t val;
      std::memcpy(&tag, e, 2);
      std::memcpy(&val, e + 2, 8);
      if (tag >= kStatTags) {
        ++counters_.unknown_stat_tags;
        continue;
      }
      s.value[tag] = val;
      s.valid_mask |= 1u << tag;
    }
    ++s.updates;
    guest_stats_ = s;
    ++counters_.stats_updates;
  }
  if (pushed) transport_->notify_used(index);
}

void Balloon::process_reports(Virtqueue& q, unsigned index) {
  bool pushed = false;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (;;) {
    auto r = q.pop(chain_);
    if (r == Virtqueue::Pop::error) ++counters_.bad_chains;
    if (r != Virtqueue::Pop::chain) break;
    // Reported free pages arrive as device-writable buffers, one per free block.
    ranges.clear();
    for (const DescBuf& b : chain_.writable) {
      uint64_t start = (b.gpa + kPageSize - 1) & ~(kPageSize - 1);
      uint64_t end = (b.gpa + b.len) & ~(kPageSize - 1);
      if (end <= start) {
        ++counters_.invalid_reports;
        continue;
      }
      ranges.emplace_back(start, end);
    }
    std::sort(ranges.begin(), ranges.end());
    size_t i = 0;
    while (i < ranges.size()) {
      auto [start, end] = ranges[i++];
      while (i < ranges.size() && ranges[i].first <= end && mem_.contains(start, std::max(end, ranges[i].second) - start)) {
        end = std::max(end, ranges[i].second);
        ++i;
      }
      if (discard(start, end - start, BalloonBackend::Why::report)) counters_.reported_bytes += end - start;
    }
    q.push(chain_.head, 0);
    pushed = true;
  }
  if (pushed) transport_->notify_used(index);
}

bool Balloon::request_stats() {
  std::lock_guard g(mu_);
  auto idx = queue_index(Role::stats);
  if (!stats_head_ || !idx || !transport_) return false;
  Virtqueue* q = transport_->queue(*idx);
  if (!q) return false;
  q->push(*stats_head_, 0);
  stats_head_.reset();
  transport_->notify_used(*idx);
  return true;
}

void Balloon::reset() {
  accepted_ = 0;
  layout_queues(offered_);
  actual_ = 0;  // a reset driver starts with an empty balloon; the host target stays
  page_map_.clear();
  stats_head_.reset();
}

void Balloon::set_target_pages(uint32_t pages) {
  std::lock_guard g(mu_);
  const uint64_t bytes = uint64_t(pages) * unit();
  if (bytes == target_bytes_) return;
  target_bytes_ = bytes;
  if (transport_) transport_->config_changed();
}

uint32_t Balloon::target_pages() {
  std::lock_guard g(mu_);
  return target_units();
}

uint64_t Balloon::page_bytes() {
  std::lock_guard g(mu_);
  return unit();
}

uint32_t Balloon::actual_pages() {
  std::lock_guard g(mu_);
  return actual_;
}

uint32_t Balloon::host_pages() {
  std::lock_guard g(mu_);
  return host_units();
}

BalloonStatus Balloon::stats() {
  std::lock_guard g(mu_);
  return {target_units(), actual_, host_units(), unit(), accepted_, counters_, guest_stats_};
}

}  // namespace hvmm::virtio
