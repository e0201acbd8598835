// tap-agent's native link: the TAP's side (tap.cc's rules for a TAP's
// records, in the thread) and the batches both ways. The design is ws_link.h's.

#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include "udp_run.h"
#include "ws_link.h"

namespace tapswitch {
namespace wslink {

namespace {

constexpr uint8_t kVnetNeedsCsum = 1;
const uint8_t kZeroVnetHdr[kVnetHdrLen] = {};
// One TAP read's room at most: a record length, a virtio-net header, a frame.
constexpr size_t kMaxRead = kRecordHeader + kVnetHdrLen + kMaxFrame;

}  // namespace

// The records of p[0, n) tile it exactly (protocol.ts countRecords).
bool Tiles(const uint8_t* p, size_t n) {
  size_t off = 0;
  while (off < n) {
    if (n - off < kRecordHeader || ReadBE32(p + off) > n - off - kRecordHeader) return false;
    off += kRecordHeader + ReadBE32(p + off);
  }
  return true;
}

// One read(2) of a TAP record into dst (tap.cc's ReadRecord rules): its
// length, or -1 (EAGAIN, EOF, an error), or -2 (a read dropped, counted).
ssize_t Link::ReadRecord(uint8_t* dst, bool vnet_records) {
  const size_t kept = vnet_records ? kVnetHdrLen : 0;
  const bool strip = o_.vnet_hdr && !vnet_records;
  const size_t asked = strip ? kVnetHdrLen + kMaxFrame : kMaxFrame + kept;
  uint8_t scratch[kVnetHdrLen];
  ssize_t n;
  do {
    if (strip) {
      struct iovec iov[2] = {{scratch, kVnetHdrLen}, {dst, kMaxFrame}};
      n = ::readv(o_.tap_fd, iov, 2);
    } else {
      n = ::read(o_.tap_fd, dst, asked);
    }
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) Count(tap_, RX_ERRORS, 1);
    return -1;
  }
  if (n == 0) return -1;
  // A length over what was asked is never trusted (issue 12, finding 16).
  if (static_cast<size_t>(n) > asked) return Count(tap_, RX_ERRORS, 1), -1;
  if (o_.vnet_hdr && static_cast<size_t>(n) < kVnetHdrLen + 1) return Count(tap_, RX_ERRORS, 1), -2;
  if (strip) {
    // Queued while offloads were on: a plain record must not carry it.
    if (scratch[1] != 0 || (scratch[0] & kVnetNeedsCsum) != 0) return Count(tap_, RX_ERRORS, 1), -2;
    n -= kVnetHdrLen;
  }
  Count(tap_, RX_FRAMES, 1);
  Count(tap_, RX_BYTES, static_cast<uint64_t>(n) - kept);
  return n;
}

// One TAP burst as one binary message. False once the link ended (the socket broke).
bool Link::Burst() {
  const bool vr = vnet_records_.load();
  uint8_t* buf = burst_.data();
  size_t used = 0;
  uint32_t frames = 0;
  for (uint32_t reads = 0; reads < kBurst && used + kMaxRead <= burst_.size(); reads++) {
    const ssize_t n = ReadRecord(buf + used + kRecordHeader, vr);
    if (n == -2) continue;
    if (n < 0) break;
    WriteBE32(buf + used, static_cast<uint32_t>(n));
    used += kRecordHeader + static_cast<size_t>(n);
    frames++;
  }
  if (frames == 0) return true;
  const ws::Output::Result r = SendLocked(ws::kBinary, buf, used, true);
  if (r == ws::Output::kBroken) return End(1006, nullptr, 0), false;
  if (r == ws::Output::kRefused) {
    Count(link_, L_DROPPED_BACKPRESSURE, frames);
  } else {
    Count(link_, L_UP_FRAMES, frames);
    Count(link_, L_UP_BURSTS, 1);
    Carried(frames, false);
    Count(link_, L_UP_BYTES, used);
  }
  // A flood's burst: let the next one gather for coalesce_us from now (the send done) rather than
  // wake for every few frames: each wake-up costs the sender, this thread, the switch and the far agent.
  // Also after a burst that stopped at its bound with frames still queued: under a flood the path
  // cannot carry, reading ahead at once only takes the CPU the switch, the far agent and the receiver
  // need (the frames then die at the receiving socket, not at this TAP). A backlog is read 128
  // frames a wait; the binding's kMaxCoalesceUsecs keeps that above what this thread reads from a TAP.
  const uint32_t us = coalesce_us_.load(std::memory_order_relaxed);
  if (frames >= kCoalesceFrames && us > 0) {
    tap_resume_ns_ = MonotonicNs() + static_cast<int64_t>(us) * 1000;
    Count(link_, L_COALESCE_WAITS, 1);
  }
  return true;
}

// k records from p[off] on as one UDP run (udp_run.h): one writev(2) the kernel segments back.
// False when the kernel refused the shape (before USO, Linux 6.2): runs are off from then on and
// the caller writes these frames alone, so none is lost.
bool Link::WriteRun(const uint8_t* p, size_t off, size_t k, size_t head, uint64_t* written, uint64_t* bytes,
                    uint64_t* dropped, uint64_t* errors) {
  const size_t len = ReadBE32(p + off);
  const uint8_t* first = p + off + kRecordHeader;
  uint8_t vnet[kVnetHdrLen], hdr[udprun::kMaxHead];
  udprun::BuildHead(first, len, head, k, vnet, hdr);
  struct iovec iov[2 + udprun::kMaxSegments];
  iov[0] = {vnet, kVnetHdrLen};
  iov[1] = {hdr, head};
  const size_t payload = len - kVnetHdrLen - head;
  for (size_t i = 0; i < k; i++)
    iov[2 + i] = {const_cast<uint8_t*>(first + i * (kRecordHeader + len) + kVnetHdrLen + head), payload};
  ssize_t w;
  do w = ::writev(o_.tap_fd, iov, static_cast<int>(2 + k));
  while (w < 0 && errno == EINTR);
  if (w < 0 && errno == EINVAL) {
    runs_ = false;
    Count(link_, L_UDP_RUNS_REFUSED, 1);
    PushEvent(E_NOTICE, N_UDP_RUNS_REFUSED, nullptr, 0);  // once: runs_ stays off
    return false;
  }
  if (w < 0) {
    *(errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? dropped : errors) += k;
    return true;
  }
  *written += k;
  *bytes += k * (len - kVnetHdrLen);
  Count(link_, L_DOWN_RUN_FRAMES, k);
  return true;
}

// A batch's records to the TAP (tap.cc's WriteFrame rules), one write(2) each, but for a run of
// UDP datagrams of one flow (udp_run.h): one write for the run.
void Link::WriteBatch(const uint8_t* p, size_t n, bool vnet_records) {
  const bool add = o_.vnet_hdr && !vnet_records;
  uint64_t written = 0, bytes = 0, dropped = 0, errors = 0;
  for (size_t off = 0; off < n;) {
    if (vnet_records && o_.vnet_hdr && runs_ && udp_runs_.load(std::memory_order_relaxed)) {
      size_t head;
      const size_t k = udprun::RunAt(p, off, n, &head);
      if (k > 1 && WriteRun(p, off, k, head, &written, &bytes, &dropped, &errors)) {
        off += k * (kRecordHeader + ReadBE32(p + off));
        continue;
      }
    }
    const size_t len = ReadBE32(p + off);
    uint8_t* frame = const_cast<uint8_t*>(p + off + kRecordHeader);
    off += kRecordHeader + len;
    ssize_t w;
    do {
      if (add) {
        struct iovec iov[2] = {{const_cast<uint8_t*>(kZeroVnetHdr), kVnetHdrLen}, {frame, len}};
        w = ::writev(o_.tap_fd, iov, 2);
      } else {
        w = ::write(o_.tap_fd, frame, len);
      }
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
      (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? dropped : errors)++;
      continue;
    }
    if (o_.vnet_hdr) w = w > static_cast<ssize_t>(kVnetHdrLen) ? w - static_cast<ssize_t>(kVnetHdrLen) : 0;
    written++;
    bytes += static_cast<uint64_t>(w);
  }
  Count(tap_, TX_FRAMES, written);
  Count(tap_, TX_BYTES, bytes);
  Count(tap_, TX_DROPPED, dropped);
  Count(tap_, TX_ERRORS, errors);
  Count(link_, L_DOWN_FRAMES, written);
  Carried(written + dropped + errors, true);  // the work is the writes, whether the TAP took them or not
}

}  // namespace wslink
}  // namespace tapswitch
