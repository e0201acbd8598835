// What the C++ tests of a refused UDP run share (fuzz/ws_link_runs_refused_test.cc,
// fuzz/ws_link_runs_fallback_test.cc): records that make one run (udp_run.h), in a message from the
// switch as the link reads it.
#pragma once

#include <string.h>

#include <cstdint>
#include <vector>

#include "../native/batch.h"
#include "../native/udp_run.h"

namespace runtest {

using namespace tapswitch;

constexpr size_t kPayload = 18;
constexpr size_t kFrame = udprun::kEth + udprun::kIp6 + udprun::kUdp + kPayload;
constexpr size_t kMarkAt = kVnetHdrLen + udprun::kEth + udprun::kIp6 + udprun::kUdp;  // in a TAP record

// One record (virtio-net header, frame) of an IPv6 UDP datagram that may join a run (udp_run.h); its
// payload's first byte is `mark`, so each frame is told apart at the far end.
inline void PutRecord(std::vector<uint8_t>& b, uint8_t mark) {
  const size_t at = b.size();
  b.resize(at + kRecordHeader + kVnetHdrLen + kFrame, 0);
  uint8_t* r = &b[at];
  WriteBE32(r, static_cast<uint32_t>(kVnetHdrLen + kFrame));
  uint8_t* v = r + kRecordHeader;
  v[0] = udprun::kNeedsCsum;
  PutLe16(v + 2, udprun::kEth + udprun::kIp6 + udprun::kUdp);  // hdr_len
  PutLe16(v + 6, udprun::kEth + udprun::kIp6);                 // csum_start
  PutLe16(v + 8, udprun::kUdpCsumOffset);
  uint8_t* f = v + kVnetHdrLen;
  const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 2}, src[6] = {0x02, 0, 0, 0, 0, 1};
  memcpy(f, dst, 6);
  memcpy(f + 6, src, 6);
  PutBe16(f + 12, 0x86dd);
  uint8_t* ip = f + udprun::kEth;
  ip[0] = 0x60;
  PutBe16(ip + 4, static_cast<uint16_t>(udprun::kUdp + kPayload));
  ip[6] = 17;
  ip[7] = 64;
  ip[8] = 0xfd, ip[23] = 1;   // fd00::1
  ip[24] = 0xfd, ip[39] = 2;  // fd00::2
  uint8_t* udp = ip + udprun::kIp6;
  PutBe16(udp, 5000);
  PutBe16(udp + 2, 5001);
  PutBe16(udp + 4, static_cast<uint16_t>(udprun::kUdp + kPayload));
  udp[udprun::kUdp] = mark;
}

// A binary WebSocket message from the switch (unmasked, as a server sends): 8 records marked from `first`.
inline std::vector<uint8_t> Message(uint8_t first) {
  std::vector<uint8_t> batch;
  for (uint8_t i = 0; i < 8; i++) PutRecord(batch, static_cast<uint8_t>(first + i));
  std::vector<uint8_t> m = {0x82, 126, static_cast<uint8_t>(batch.size() >> 8), static_cast<uint8_t>(batch.size())};
  m.insert(m.end(), batch.begin(), batch.end());
  return m;
}

// Message()'s 8 records make one run as udp_run.h decides: else the tests would test nothing.
inline bool MakesOneRun() {
  size_t head;
  const std::vector<uint8_t> m = Message(0);
  return udprun::RunAt(m.data() + 4, 0, m.size() - 4, &head) == 8;
}

}  // namespace runtest
