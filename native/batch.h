// The batch records every class of the addon speaks with JS, both ways, and
// the counters each class keeps: plain C++ (no N-API), so the fuzz target
// (fuzz/batch_fuzz.cc) and datapath.h link the walk without node's headers.
// records.h adds what needs N-API (BatchArgs, the Slab).
//
// - A record is [u32 big-endian length][payload] (docs/PROTOCOL.md's batch):
//   the payload is a frame, or a virtio-net header and a frame on a TAP whose
//   records carry it. A batch is records back to back; JS forwards one
//   without looking inside.
// - Writing a batch walks its records (ForEachRecord): one whose length runs
//   past the batch's end is never trusted; it stops the walk and is counted
//   (TX_MALFORMED). Nothing is allocated per record.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tapswitch {

// The counters' layout (native/index.d.ts STAT_*), one double each: read by
// JS at scrape time, never per frame.
enum Stat { RX_FRAMES, RX_BYTES, TX_FRAMES, TX_BYTES, TX_DROPPED, TX_ERRORS, TX_MALFORMED, RX_ERRORS, STAT_COUNT };

// Bytes of a record's length.
constexpr size_t kRecordHeader = 4;
// Largest frame one read can return (IFF_TAP: the 64 KiB MTU ceiling and
// Ethernet/VLAN header headroom); a Unix datagram's cap too.
constexpr size_t kMaxFrame = 65536 + 64;
// struct virtio_net_hdr (legacy layout) ahead of each frame on a TAP opened
// with IFF_VNET_HDR.
constexpr size_t kVnetHdrLen = 10;

inline uint32_t ReadBE32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

inline void WriteBE32(uint8_t* p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

// 16-bit fields: big-endian (network headers) and little-endian (virtio-net headers, TUNSETVNETLE).
inline uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline uint16_t Le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline void PutLe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}

// Walks the records of p[off, end) and calls write(payload, len) for each;
// returns how many it took (write returned true). A record running past
// `end` stops the walk and counts TX_MALFORMED in `stats` (STAT_COUNT long).
template <typename Write>
uint32_t ForEachRecord(const uint8_t* p, size_t off, size_t end, double* stats, Write write) {
  uint32_t took = 0;
  while (off < end) {
    if (end - off < kRecordHeader || ReadBE32(p + off) > end - off - kRecordHeader) {
      stats[TX_MALFORMED]++;
      break;
    }
    const uint32_t len = ReadBE32(p + off);
    if (write(p + off + kRecordHeader, static_cast<size_t>(len))) took++;
    off += kRecordHeader + size_t(len);
  }
  return took;
}

}  // namespace tapswitch
