// A run of UDP datagrams of one flow, written to a TAP as ONE frame that the
// kernel segments back (virtio-net GSO_UDP_L4, "USO", Linux 6.2+): tap-agent's
// downlink writes a 64-byte UDP flood with one write(2) per run, not per frame.
//
// Why: the agent's thread paid a write(2), an skb and a pass through the IP
// stack for every frame, on the same 2 CPUs as the receiving application,
// which then lacked the CPU to drain its socket. The kernel's own segmentation
// gives back each datagram byte for byte, so nothing a station sees changes.
//
// What may join a run (records as the uplink carries them with offloads on:
// a 10-byte virtio-net header, then the frame): every frame the same length,
// with the same virtio-net header (a partial checksum the receiver completes,
// as the sender's stack asked: NEEDS_CSUM at the UDP checksum, no GSO), and
// the same Ethernet, IP and UDP headers, but for IPv4's identification, which
// must count up by one a frame (the kernel numbers the segments so) and its
// header checksum, which must be what the kernel writes for each segment (it
// drops a frame with a wrong one, and would drop the run). IPv4 without options and not a fragment, or
// IPv6 with UDP as its first next header; no VLAN tag; to one host (a unicast MAC, not an IP
// multicast group: IPv4's multicast routing drops a run longer than the next link's MTU with DF,
// where it forwards each datagram alone, ipmr_prepare_xmit). Anything else, or a run of one, is
// written alone, as before.
//
// Policy only: no I/O. ws_link_tap.cc writes the run.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "batch.h"

namespace tapswitch {
namespace udprun {

// Frames in one run at most: the kernel's own cap on UDP GSO segments (UDP_MAX_SEGMENTS) is 128.
constexpr size_t kMaxSegments = 64;
// The virtio-net header's fields (little-endian: tap.cc sets TUNSETVNETLE).
constexpr uint8_t kNeedsCsum = 1, kGsoNone = 0, kGsoUdpL4 = 5;
constexpr size_t kEth = 14, kIp4 = 20, kIp6 = 40, kUdp = 8, kUdpCsumOffset = 6;
// The longest head a run's frame carries: Ethernet, IPv6, UDP.
constexpr size_t kMaxHead = kEth + kIp6 + kUdp;

// An IPv4 header's checksum (20 bytes, RFC 1071) as the kernel writes it, its own field taken as zero.
inline uint16_t Ip4Checksum(const uint8_t* ip) {
  uint32_t s = 0;
  for (size_t i = 0; i < kIp4; i += 2)
    if (i != 10) s += Be16(ip + i);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}

// Ones' complement a + b (RFC 1624's arithmetic, as the kernel's csum16_add).
inline uint16_t Add16(uint16_t a, uint16_t b) {
  uint32_t s = uint32_t(a) + b;
  return static_cast<uint16_t>((s & 0xffff) + (s >> 16));
}

// The frame's shape when it may start a run: its head's length (Ethernet to UDP), else 0.
// `rec` is a record (virtio-net header, frame) of `len` bytes.
inline size_t HeadOf(const uint8_t* rec, size_t len) {
  if (len < kVnetHdrLen + kEth + kIp4 + kUdp + 1) return 0;
  const uint8_t* v = rec;
  const uint8_t* f = rec + kVnetHdrLen;
  const size_t flen = len - kVnetHdrLen;
  if (v[0] != kNeedsCsum || v[1] != kGsoNone || Le16(v + 8) != kUdpCsumOffset) return 0;
  // tun refuses a frame whose hdr_len runs past it (EINVAL); in a run the head's would replace it.
  if (Le16(v + 2) > flen) return 0;
  // A group MAC (broadcast, multicast): a multicast router measures the whole run against the MTU.
  if ((f[0] & 1) != 0) return 0;
  const uint16_t type = Be16(f + 12);
  size_t head;
  if (type == 0x0800) {
    const uint8_t* ip = f + kEth;
    // Version 4 without options, not a fragment (MF and offset zero), UDP, its length the frame's.
    if (ip[0] != 0x45 || (Be16(ip + 6) & 0x3fff) != 0 || ip[9] != 17) return 0;
    if ((ip[16] & 0xf0) == 0xe0) return 0;  // to a multicast group (224.0.0.0/4), whatever the MAC
    // Its checksum exactly as the kernel would write it for the segment: right, and not the other zero.
    if (Be16(ip + 2) != flen - kEth || Be16(ip + 10) != Ip4Checksum(ip)) return 0;
    head = kEth + kIp4;
  } else if (type == 0x86dd) {
    if (flen < kEth + kIp6 + kUdp + 1) return 0;
    const uint8_t* ip = f + kEth;
    if ((ip[0] >> 4) != 6 || ip[6] != 17 || Be16(ip + 4) != flen - kEth - kIp6) return 0;
    if (ip[24] == 0xff) return 0;  // to a multicast group (ff00::/8), whatever the MAC
    head = kEth + kIp6;
  } else {
    return 0;
  }
  if (Le16(v + 6) != head || Be16(f + head + 4) != flen - head) return 0;
  return head + kUdp;
}

// Whether `rec` (the run's i-th frame, i >= 1) goes on the run that `first` starts.
inline bool Joins(const uint8_t* first, const uint8_t* rec, size_t head, size_t i) {
  if (memcmp(first, rec, kVnetHdrLen) != 0) return false;
  const uint8_t* a = first + kVnetHdrLen;
  const uint8_t* b = rec + kVnetHdrLen;
  if (head == kEth + kIp6 + kUdp) return memcmp(a, b, head) == 0;
  // IPv4: all but the identification (bytes 4-5 of the IP header) and the header checksum (10-11).
  const size_t id = kEth + 4, csum = kEth + 10;
  if (memcmp(a, b, id) != 0 || memcmp(a + id + 2, b + id + 2, csum - id - 2) != 0 ||
      memcmp(a + csum + 2, b + csum + 2, head - csum - 2) != 0)
    return false;
  if (Be16(b + id) != static_cast<uint16_t>(Be16(a + id) + i)) return false;
  return Be16(b + csum) == Ip4Checksum(b + kEth);
}

// How many records from p[off] on (a batch that Tiles) make one run, and the run's frame head's
// length (`*head`, 0 when the first cannot start one). 1 means: write it alone.
inline size_t RunAt(const uint8_t* p, size_t off, size_t n, size_t* head) {
  const size_t len = ReadBE32(p + off);
  const uint8_t* first = p + off + kRecordHeader;
  *head = HeadOf(first, len);
  if (*head == 0) return 1;
  const size_t payload = len - kVnetHdrLen - *head;
  // The run's IP length must fit its 16 bits (IPv4's total length, IPv6's payload length).
  const size_t ip_over = *head == kEth + kIp4 + kUdp ? kIp4 + kUdp : kUdp;
  size_t k = 1;
  for (size_t at = off + kRecordHeader + len; at < n && k < kMaxSegments; k++) {
    if (ReadBE32(p + at) != len || ip_over + (k + 1) * payload > 0xffff) break;
    if (!Joins(first, p + at + kRecordHeader, *head, k)) break;
    at += kRecordHeader + len;
  }
  return k;
}

// The run's virtio-net header and head, for `k` frames like `first` (a record `len` bytes long,
// its head `head` bytes): the kernel segments it back into those k frames.
inline void BuildHead(const uint8_t* first, size_t len, size_t head, size_t k, uint8_t vnet[kVnetHdrLen],
                      uint8_t out[kMaxHead]) {
  const size_t payload = len - kVnetHdrLen - head;
  memcpy(vnet, first, kVnetHdrLen);
  vnet[1] = kGsoUdpL4;
  PutLe16(vnet + 2, static_cast<uint16_t>(head));     // hdr_len
  PutLe16(vnet + 4, static_cast<uint16_t>(payload));  // gso_size
  memcpy(out, first + kVnetHdrLen, head);
  const size_t l3 = head - kUdp;  // where UDP starts
  const uint16_t seg_udp = static_cast<uint16_t>(kUdp + payload);
  const uint16_t run_udp = static_cast<uint16_t>(kUdp + k * payload);
  PutBe16(out + l3 + 4, run_udp);
  // The partial checksum holds the pseudo-header's sum, which counts the UDP length: the kernel
  // takes the run's length out and each segment's back in (__udp_gso_segment), so put the run's in.
  PutBe16(out + l3 + 6, Add16(Add16(Be16(out + l3 + 6), static_cast<uint16_t>(~seg_udp)), run_udp));
  if (l3 == kEth + kIp4) {
    uint8_t* ip = out + kEth;
    PutBe16(ip + 2, static_cast<uint16_t>(kIp4 + run_udp));
    PutBe16(ip + 10, Ip4Checksum(ip));
  } else {
    PutBe16(out + kEth + 4, run_udp);
  }
}

}  // namespace udprun
}  // namespace tapswitch
