// The virtio ABI between hvmm's virtio-mmio devices (devices/virtio/) and the built-in guest's
// driver (guest/virtio/): virtio 1.x spec constants, plus two choices of hvmm's own (vendor ID,
// register window size). Shared by both sides; freestanding. Everything is little-endian (x86 only).
#pragma once
#include <cstddef>
#include <cstdint>

namespace hvmm::abi::virtio {

// virtio-mmio transport, version 2 registers (§4.2.2): offsets into the device's slot.
namespace mmio_reg {
inline constexpr uint32_t kMagicValue = 0x000;
inline constexpr uint32_t kVersion = 0x004;
inline constexpr uint32_t kDeviceId = 0x008;
inline constexpr uint32_t kVendorId = 0x00c;
inline constexpr uint32_t kDeviceFeatures = 0x010;
inline constexpr uint32_t kDeviceFeaturesSel = 0x014;
inline constexpr uint32_t kDriverFeatures = 0x020;
inline constexpr uint32_t kDriverFeaturesSel = 0x024;
inline constexpr uint32_t kQueueSel = 0x030;
inline constexpr uint32_t kQueueNumMax = 0x034;
inline constexpr uint32_t kQueueNum = 0x038;
inline constexpr uint32_t kQueueReady = 0x044;
inline constexpr uint32_t kQueueNotify = 0x050;
inline constexpr uint32_t kInterruptStatus = 0x060;
inline constexpr uint32_t kInterruptAck = 0x064;
inline constexpr uint32_t kStatus = 0x070;
inline constexpr uint32_t kQueueDescLow = 0x080;
inline constexpr uint32_t kQueueDescHigh = 0x084;
inline constexpr uint32_t kQueueDriverLow = 0x090;
inline constexpr uint32_t kQueueDriverHigh = 0x094;
inline constexpr uint32_t kQueueDeviceLow = 0x0a0;
inline constexpr uint32_t kQueueDeviceHigh = 0x0a4;
inline constexpr uint32_t kShmSel = 0x0ac;
inline constexpr uint32_t kShmLenLow = 0x0b0;
inline constexpr uint32_t kShmLenHigh = 0x0b4;
inline constexpr uint32_t kShmBaseLow = 0x0b8;
inline constexpr uint32_t kShmBaseHigh = 0x0bc;
inline constexpr uint32_t kConfigGeneration = 0x0fc;
inline constexpr uint32_t kConfig = 0x100;    // device-specific config space starts here
inline constexpr uint32_t kSlotSize = 0x1000;  // hvmm: one 4 KiB register window per device

inline constexpr uint32_t kMagic = 0x74726976;   // "virt"
inline constexpr uint32_t kVersion2 = 2;
inline constexpr uint32_t kVendor = 0x4d4d5648;  // hvmm: "HVMM"
// InterruptStatus / InterruptACK bits.
inline constexpr uint32_t kIntUsedBuffer = 1;
inline constexpr uint32_t kIntConfigChange = 2;
}  // namespace mmio_reg

// Device status bits (§2.1).
inline constexpr uint32_t kStatusAcknowledge = 1;
inline constexpr uint32_t kStatusDriver = 2;
inline constexpr uint32_t kStatusDriverOk = 4;
inline constexpr uint32_t kStatusFeaturesOk = 8;
inline constexpr uint32_t kStatusNeedsReset = 64;
inline constexpr uint32_t kStatusFailed = 128;

// Feature bits reserved for the transport / ring (§6).
inline constexpr uint64_t kFeatureIndirectDesc = 1ull << 28;
inline constexpr uint64_t kFeatureEventIdx = 1ull << 29;
inline constexpr uint64_t kFeatureVersion1 = 1ull << 32;

// Split virtqueue layout (§2.7).
inline constexpr uint16_t kDescFlagNext = 1;
inline constexpr uint16_t kDescFlagWrite = 2;
inline constexpr uint16_t kDescFlagIndirect = 4;
inline constexpr uint16_t kAvailFlagNoInterrupt = 1;
inline constexpr uint16_t kMaxQueueSize = 32768;  // split-queue limit

struct VirtqDesc {
  uint64_t addr;  // guest-physical
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);
static_assert(offsetof(VirtqDesc, len) == 8 && offsetof(VirtqDesc, flags) == 12 &&
              offsetof(VirtqDesc, next) == 14);

struct VirtqUsedElem {
  uint32_t id;   // head of the used chain
  uint32_t len;  // bytes the device wrote into it
};
static_assert(sizeof(VirtqUsedElem) == 8 && offsetof(VirtqUsedElem, len) == 4);

// virtio-balloon (device ID 5, §5.5).
namespace balloon {
inline constexpr uint32_t kDeviceId = 5;
inline constexpr uint64_t kFeatureMustTellHost = 1ull << 0;
inline constexpr uint64_t kFeatureStatsVq = 1ull << 1;
inline constexpr uint64_t kFeatureDeflateOnOom = 1ull << 2;
inline constexpr uint64_t kFeatureFreePageHint = 1ull << 3;
inline constexpr uint64_t kFeaturePagePoison = 1ull << 4;
inline constexpr uint64_t kFeatureReporting = 1ull << 5;
// hvmm's own, not in the virtio spec: VIRTIO_BALLOON_F_HVMM_HUGE_PAGES, the balloon with 2 MiB
// pages of the HyperAlloc paper's reference. The driver inflates and deflates 2 MiB blocks (order 9)
// and sends the PFN of each block's first 4 KiB frame (still a u32 of 4 KiB units, 2 MiB aligned);
// the device gives back 2 MiB per PFN; `num_pages` and `actual` count 2 MiB units; deflate-on-OOM
// returns one 2 MiB block. Bit 23 is the last of the low range the spec leaves to each device type
// (0..23) and far from the bits it has given the balloon so far (0..5). A stock Linux guest does not
// know it, so it does not accept it and gets the ordinary 4 KiB balloon.
inline constexpr uint64_t kFeatureHvmmHugePages = 1ull << 23;
// Inflate/deflate PFNs are u32 numbers of 4 KiB pages, whatever the guest's page size.
inline constexpr uint64_t kPfnShift = 12;
inline constexpr uint64_t kPageSize = 1ull << kPfnShift;
inline constexpr uint64_t kHugePageSize = 2ull << 20;  // one balloon page with kFeatureHvmmHugePages
inline constexpr uint64_t kPfnsPerHugePage = kHugePageSize / kPageSize;
inline constexpr uint16_t kMinReportingQueue = 32;  // Linux refuses a smaller reporting queue

// Config space (§5.5.4), at mmio_reg::kConfig.
struct Config {
  uint32_t num_pages;              // host: target balloon size in 4 KiB pages (2 MiB: kFeatureHvmmHugePages)
  uint32_t actual;                 // guest: current balloon size, same unit
  uint32_t free_page_hint_cmd_id;  // unused (FREE_PAGE_HINT not offered)
  uint32_t poison_val;             // unused (PAGE_POISON not offered)
};
static_assert(sizeof(Config) == 16 && offsetof(Config, actual) == 4);
inline constexpr uint32_t kConfigNumPages = offsetof(Config, num_pages);
inline constexpr uint32_t kConfigActual = offsetof(Config, actual);

// One statistics entry (§5.5.6.3) as the driver lays it out: le16 tag, le64 value, packed (10 bytes).
inline constexpr uint32_t kStatEntrySize = 10;
enum StatTag : uint16_t {
  kStatSwapIn = 0, kStatSwapOut = 1, kStatMajorFaults = 2, kStatMinorFaults = 3,
  kStatMemFree = 4, kStatMemTotal = 5, kStatMemAvailable = 6, kStatDiskCaches = 7,
  kStatHugetlbAllocs = 8, kStatHugetlbFailures = 9,
  kStatTags = 16,  // virtio 1.3 defines tags 0..15; newer revisions may add more
};
}  // namespace balloon

// virtio-mem (device ID 24, virtio 1.2 §5.15): one device-managed region of guest-physical
// address space, split into blocks the driver asks the device to plug and unplug.
namespace mem {
inline constexpr uint32_t kDeviceId = 24;
inline constexpr uint64_t kFeatureAcpiPxm = 1ull << 0;                // node_id is an ACPI PXM
inline constexpr uint64_t kFeatureUnpluggedInaccessible = 1ull << 1;  // never touch unplugged memory

// Config space (§5.15.4), at mmio_reg::kConfig. Read-only for the driver.
struct Config {
  uint64_t block_size;          // power of two; addr and every size below are multiples of it
  uint16_t node_id;             // meaningful only with kFeatureAcpiPxm
  uint8_t padding[6];
  uint64_t addr;                // guest-physical start of the region
  uint64_t region_size;
  uint64_t usable_region_size;  // [addr, addr + usable_region_size) may be plugged
  uint64_t plugged_size;
  uint64_t requested_size;      // what the host wants plugged
};
static_assert(sizeof(Config) == 56);
static_assert(offsetof(Config, block_size) == 0 && offsetof(Config, node_id) == 8 &&
              offsetof(Config, padding) == 10 && offsetof(Config, addr) == 16 &&
              offsetof(Config, region_size) == 24 && offsetof(Config, usable_region_size) == 32 &&
              offsetof(Config, plugged_size) == 40 && offsetof(Config, requested_size) == 48);

// Request types (§5.15.6).
inline constexpr uint16_t kReqPlug = 0;
inline constexpr uint16_t kReqUnplug = 1;
inline constexpr uint16_t kReqUnplugAll = 2;  // addr and nb_blocks are ignored
inline constexpr uint16_t kReqState = 3;

// A request: 24 bytes in the chain's device-readable part.
struct Request {
  uint16_t type;
  uint16_t padding[3];
  uint64_t addr;       // first block; must be block_size-aligned
  uint16_t nb_blocks;  // > 0
  uint16_t padding2[3];
};
static_assert(sizeof(Request) == 24);
static_assert(offsetof(Request, type) == 0 && offsetof(Request, padding) == 2 && offsetof(Request, addr) == 8 &&
              offsetof(Request, nb_blocks) == 16 && offsetof(Request, padding2) == 18);

// Response types.
inline constexpr uint16_t kRespAck = 0;
inline constexpr uint16_t kRespNack = 1;   // refused by policy (PLUG beyond requested_size)
inline constexpr uint16_t kRespBusy = 2;   // cannot be processed now; retry later
inline constexpr uint16_t kRespError = 3;  // invalid request (range, block states)

// STATE response payload.
inline constexpr uint16_t kStatePlugged = 0;
inline constexpr uint16_t kStateUnplugged = 1;
inline constexpr uint16_t kStateMixed = 2;

// A response: 10 bytes in the chain's device-writable part; `state` only means something for an
// acknowledged STATE request.
struct Response {
  uint16_t type;
  uint16_t padding[3];
  uint16_t state;
};
static_assert(sizeof(Response) == 10);
static_assert(offsetof(Response, type) == 0 && offsetof(Response, padding) == 2 && offsetof(Response, state) == 8);
}  // namespace mem

}  // namespace hvmm::abi::virtio
