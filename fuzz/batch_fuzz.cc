// libFuzzer target: the batch walk (native/batch.h ForEachRecord) and the UDP
// runs tap-agent's native link finds in it (native/udp_run.h RunAt and
// BuildHead, walked as ws_link_tap.cc's WriteBatch walks them), over bytes a
// peer chose. JS hands the addon a batch it did not look inside, so every
// length in it is hostile, and the frames come from untrusted stations.
// Asserted (abort, so libFuzzer keeps the input):
// - every record handed out lies inside [off, end) of the input, and the
//   records are back to back from `off` (nothing skipped, nothing reread);
// - `took` counts exactly the records whose write returned true;
// - TX_MALFORMED is counted once iff the walk stopped short of `end`, and no
//   other counter moves.
// When the batch tiles (no malformed record), the run walk:
// - every run is 1 to kMaxSegments records, all inside the batch;
// - a run of k > 1: its IP length fits 16 bits, the built virtio-net header
//   asks for USO (gso_type 5, hdr_len the head, gso_size the payload, the
//   first frame's csum_start/csum_offset), the built frame is well formed
//   (lengths, IPv4 header checksum), and the kernel's segmentation of it (the
//   reference model below) gives back each of the k frames byte for byte, but
//   for the partial UDP checksum's two ones'-complement zeros.
// Input: two bytes choose where the batch starts, one byte which records the
// writer refuses; the rest is the batch. scripts/fuzz.sh runs it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../native/batch.h"
#include "../native/udp_run.h"

#define FUZZ_CHECK(c)                                                       \
  do {                                                                      \
    if (!(c)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                              \
    }                                                                       \
  } while (0)

namespace {

using tapswitch::kRecordHeader;
using tapswitch::kVnetHdrLen;
using tapswitch::ReadBE32;

// The reference model of what Linux makes of a run written to a TAP (written from the kernel's
// source, not from udp_run.h, so that a slip in either shows): virtio_net_hdr_to_skb's checks of a
// GSO_UDP_L4 header, then inet_gso_segment (net/ipv4/af_inet.c) or ipv6_gso_segment
// (net/ipv6/ip6_offload.c) around __udp_gso_segment (net/ipv4/udp_offload.c), for a CHECKSUM_PARTIAL
// skb without encapsulation, fraglist or GSO_PARTIAL. Each segment is the run's head (Ethernet, IP,
// UDP, copied by skb_segment) and the next gso_size bytes of payload (the last may be shorter); then
// - UDP: len = 8 + its payload; check = csum16_add(csum16_sub(run's check, run's len), len): the
//   partial checksum stays partial (gso_reset_checksum), only its pseudo-header length swapped;
// - IPv4: tot_len = the segment's length from the IP header on, id = the run's id + i (the
//   16-bit counter, as htons(id++)), the header checksum recomputed (ip_send_check, RFC 1071);
// - IPv6: payload_len = the segment's length after the IPv6 header.
// The checksum arithmetic works on 16-bit words as memory holds them (the kernel's __be16 and
// __sum16), not on host-order values as udp_run.h does.
uint16_t Word(const uint8_t* p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}
void PutWord(uint8_t* p, uint16_t v) { memcpy(p, &v, 2); }
unsigned Net16(const uint8_t* p) { return (unsigned(p[0]) << 8) | p[1]; }
void PutNet16(uint8_t* p, unsigned v) {  // htons, truncating as the kernel's does
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
uint16_t Host16(uint16_t v) {  // a network-order word as the 16-bit value it means
  uint8_t b[2];
  memcpy(b, &v, 2);
  return static_cast<uint16_t>(Net16(b));
}

// include/net/checksum.h
uint16_t Csum16Add(uint16_t csum, uint16_t addend) {
  uint16_t res = csum;
  res = static_cast<uint16_t>(res + addend);
  return static_cast<uint16_t>(res + (res < addend));
}
uint16_t Csum16Sub(uint16_t csum, uint16_t addend) { return Csum16Add(csum, static_cast<uint16_t>(~addend)); }

// ip_send_check: the IPv4 header's checksum field zeroed, then the ones' complement of the ones'
// complement sum of its 16-bit words (RFC 1071).
uint16_t Rfc1071(const uint8_t* h, size_t n) {
  uint32_t s = 0;
  for (size_t i = 0; i < n; i += 2) s += Net16(h + i);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}
void IpSendCheck(uint8_t* ip, size_t ihl) {
  ip[10] = ip[11] = 0;
  PutNet16(ip + 10, Rfc1071(ip, ihl));
}

// The frames Linux makes of `run` (a frame written with the virtio-net header `vnet`), FUZZ_CHECKing
// on the way that the kernel takes it (no EINVAL): each a whole Ethernet frame.
std::vector<std::vector<uint8_t>> KernelSegments(const uint8_t* vnet, const std::vector<uint8_t>& run) {
  const unsigned gso_size = vnet[4] | (vnet[5] << 8), csum_start = vnet[6] | (vnet[7] << 8);
  const unsigned csum_offset = vnet[8] | (vnet[9] << 8);
  // virtio_net_hdr_to_skb, VIRTIO_NET_HDR_GSO_UDP_L4: a partial checksum at the UDP check, gso_size
  // not GSO_BY_FRAGS; tun_get_user: hdr_len within the frame.
  FUZZ_CHECK(vnet[0] == 1 && vnet[1] == 5);
  FUZZ_CHECK(csum_offset == 6 && gso_size != 0 && gso_size != 0xffff);
  FUZZ_CHECK(size_t(vnet[2] | (vnet[3] << 8)) <= run.size());
  FUZZ_CHECK(run.size() >= 14 && csum_start + 8 <= run.size());
  const size_t nh = 14;
  const unsigned type = Net16(run.data() + 12);
  size_t th;  // the transport header: after IPv4's ihl words, or IPv6's fixed header
  if (type == 0x0800) {
    FUZZ_CHECK(run.size() >= nh + 20 && (run[nh] >> 4) == 4 && (run[nh] & 15) >= 5 && run[nh + 9] == 17);
    th = nh + (run[nh] & 15) * 4u;
  } else {
    FUZZ_CHECK(type == 0x86dd && run.size() >= nh + 40 && (run[nh] >> 4) == 6 && run[nh + 6] == 17);
    th = nh + 40;
  }
  // __udp_gso_segment: checksum start at the transport header, more than one segment's worth.
  FUZZ_CHECK(csum_start == th && run.size() >= th + 8);
  const size_t payload = run.size() - th - 8;
  FUZZ_CHECK(8 + payload > 8 + size_t(gso_size));
  // virtio_net_hdr_to_skb: at most UDP_MAX_SEGMENTS (128) segments.
  FUZZ_CHECK(payload <= size_t(gso_size) * 128);
  const uint16_t run_len = Word(run.data() + th + 4), run_check = Word(run.data() + th + 6);
  const unsigned id = Net16(run.data() + nh + 4);
  std::vector<std::vector<uint8_t>> segs;
  for (size_t at = 0, i = 0; at < payload; at += gso_size, i++) {
    const size_t n = payload - at < gso_size ? payload - at : gso_size;
    std::vector<uint8_t> s(run.begin(), run.begin() + th + 8);
    s.insert(s.end(), run.begin() + th + 8 + at, run.begin() + th + 8 + at + n);
    uint8_t newlen[2];
    PutNet16(newlen, static_cast<unsigned>(8 + n));
    PutWord(s.data() + th + 4, Word(newlen));
    PutWord(s.data() + th + 6, Csum16Add(Csum16Sub(run_check, run_len), Word(newlen)));
    if (type == 0x0800) {
      PutNet16(s.data() + nh + 2, static_cast<unsigned>(s.size() - nh));
      PutNet16(s.data() + nh + 4, static_cast<unsigned>(id + i));
      IpSendCheck(s.data() + nh, th - nh);
    } else {
      PutNet16(s.data() + nh + 4, static_cast<unsigned>(s.size() - th));
    }
    segs.push_back(std::move(s));
  }
  return segs;
}

// Whether the run frame is one the kernel's IP input keeps (ip_rcv / ipv6_rcv, when it is for the
// host): IP lengths the frame's, the IPv4 header checksum right; and UDP's length the frame's.
bool WellFormed(const std::vector<uint8_t>& run, size_t l3_len) {
  const size_t nh = 14, th = nh + l3_len;
  if (Net16(run.data() + th + 4) != run.size() - th) return false;
  if (l3_len == 20) return Net16(run.data() + nh + 2) == run.size() - nh && Rfc1071(run.data() + nh, 20) == 0;
  return Net16(run.data() + nh + 4) == run.size() - th;
}

// The run of k records from p[off] on, as WriteBatch hands it to WriteRun: checked against the model.
void CheckRun(const uint8_t* p, size_t off, size_t n, size_t k, size_t head) {
  const size_t len = ReadBE32(p + off);
  const uint8_t* first = p + off + kRecordHeader;
  FUZZ_CHECK(head == tapswitch::udprun::kEth + tapswitch::udprun::kIp4 + 8 ||
             head == tapswitch::udprun::kEth + tapswitch::udprun::kIp6 + 8);
  FUZZ_CHECK(len > kVnetHdrLen + head);
  // To one host: a unicast MAC and no IP multicast group (ipmr_prepare_xmit measures a run whole).
  const uint8_t* f0 = first + kVnetHdrLen;
  FUZZ_CHECK((f0[0] & 1) == 0);
  FUZZ_CHECK(head == tapswitch::udprun::kEth + tapswitch::udprun::kIp4 + 8 ? (f0[14 + 16] & 0xf0) != 0xe0
                                                                           : f0[14 + 24] != 0xff);
  const size_t payload = len - kVnetHdrLen - head, l3_len = head - 14 - 8;
  // The run's IP length fits its 16 bits (IPv4's total length counts its header, IPv6's does not).
  FUZZ_CHECK((l3_len == 20 ? 20 : 0) + 8 + k * payload <= 0xffff);
  uint8_t vnet[kVnetHdrLen], hdr[tapswitch::udprun::kMaxHead];
  tapswitch::udprun::BuildHead(first, len, head, k, vnet, hdr);
  FUZZ_CHECK(vnet[0] == first[0] && vnet[1] == 5);
  FUZZ_CHECK(size_t(vnet[2] | (vnet[3] << 8)) == head && size_t(vnet[4] | (vnet[5] << 8)) == payload);
  FUZZ_CHECK(memcmp(vnet + 6, first + 6, 4) == 0);
  // The frame WriteRun's iovecs gather: the head, then each record's payload at its stride.
  std::vector<uint8_t> run(hdr, hdr + head);
  for (size_t i = 0; i < k; i++) {
    const uint8_t* pl = first + i * (kRecordHeader + len) + kVnetHdrLen + head;
    run.insert(run.end(), pl, pl + payload);
  }
  FUZZ_CHECK(WellFormed(run, l3_len));
  const std::vector<std::vector<uint8_t>> segs = KernelSegments(vnet, run);
  FUZZ_CHECK(segs.size() == k);
  const size_t check = head - 8 + 6;  // the UDP check's offset in a frame
  for (size_t i = 0, at = off; i < k; i++) {
    // The i-th record, found by its own length, as the one-write-a-frame path would have written it.
    FUZZ_CHECK(at + kRecordHeader <= n && ReadBE32(p + at) == len && len <= n - at - kRecordHeader);
    const uint8_t* rec = p + at + kRecordHeader;
    // What the segment carries up the stack: the same partial checksum request, no GSO.
    FUZZ_CHECK(rec[0] == vnet[0] && rec[1] == 0 && memcmp(rec + 6, vnet + 6, 4) == 0);
    // And one tun takes alone: its hdr_len within the frame (tun_get_user's EINVAL otherwise).
    FUZZ_CHECK(size_t(rec[2] | (rec[3] << 8)) <= len - kVnetHdrLen);
    const uint8_t* f = rec + kVnetHdrLen;
    const std::vector<uint8_t>& s = segs[i];
    FUZZ_CHECK(s.size() == len - kVnetHdrLen);
    FUZZ_CHECK(memcmp(s.data(), f, check) == 0);
    FUZZ_CHECK(memcmp(s.data() + check + 2, f + check + 2, s.size() - check - 2) == 0);
    const uint16_t got = Host16(Word(s.data() + check)), want = static_cast<uint16_t>(Net16(f + check));
    FUZZ_CHECK(got == want || ((got == 0 || got == 0xffff) && (want == 0 || want == 0xffff)));
    at += kRecordHeader + len;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const size_t body = size - 3;
  const uint8_t* p = data + 3;  // the batch: exactly the rest of libFuzzer's buffer, so ASan sees any overread
  const size_t off = ((size_t(data[0]) << 8) | data[1]) % (body + 1);
  const uint8_t refuse = data[2];  // bit i: refuse the record i % 8

  double stats[tapswitch::STAT_COUNT] = {};
  size_t next = off, records = 0, accepted = 0;
  const uint32_t took = tapswitch::ForEachRecord(p, off, body, stats, [&](const uint8_t* payload, size_t len) {
    // Back to back: this record's length sits right before its payload, at `next`.
    FUZZ_CHECK(payload == p + next + tapswitch::kRecordHeader);
    FUZZ_CHECK(len <= body - (next + tapswitch::kRecordHeader));
    FUZZ_CHECK(len == tapswitch::ReadBE32(p + next));
    // Touch every byte handed out: ASan aborts on one outside the input.
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < len; i++) sink ^= payload[i];
    (void)sink;
    next += tapswitch::kRecordHeader + len;
    const bool ok = ((refuse >> (records++ % 8)) & 1) == 0;
    if (ok) accepted++;
    return ok;
  });
  FUZZ_CHECK(took == accepted);
  FUZZ_CHECK(next <= body);
  // Stopped short of the end <=> one malformed record counted.
  FUZZ_CHECK(stats[tapswitch::TX_MALFORMED] == (next < body ? 1 : 0));
  for (int i = 0; i < tapswitch::STAT_COUNT; i++) {
    if (i != tapswitch::TX_MALFORMED) FUZZ_CHECK(stats[i] == 0);
  }
  // A stop is justified: what is left cannot hold its header or its payload.
  if (next < body) {
    FUZZ_CHECK(body - next < tapswitch::kRecordHeader ||
               tapswitch::ReadBE32(p + next) > body - next - tapswitch::kRecordHeader);
    return 0;
  }
  // The batch tiles: walk its runs as WriteBatch does (a run of k > 1 written as one, else one record).
  for (size_t at = off; at < body;) {
    size_t head = 0;
    const size_t k = tapswitch::udprun::RunAt(p, at, body, &head);
    const size_t len = ReadBE32(p + at);
    FUZZ_CHECK(k >= 1 && k <= tapswitch::udprun::kMaxSegments);
    FUZZ_CHECK(k <= (body - at) / (kRecordHeader + len));
    if (k > 1) CheckRun(p, at, body, k, head);
    at += k * (kRecordHeader + len);
  }
  return 0;
}
