// tap-agent's native data path (issue 24): one thread per uplink connection
// that owns the TAP's frames and the WebSocket's socket once JS has opened
// the connection. ws_link_binding.cc is its face to JS; this is plain C++.
//
// Why: every hop of the agent path woke Node's event loop (~190 µs a hop on
// these machines). A thread blocked in poll(2) on an eventfd, the TAP fd and
// the socket fd wakes into a few hundred bytes of C++ instead, as the local
// fast path (fastpath.cc) does for switchd's own TAPs.
//
// - TAP -> socket: a burst of TAP reads lands in one send buffer as
//   [u32 BE len][record]... (tap.cc's ReadRecord rules: the virtio-net header
//   kept when records carry it, stripped with readv and offloaded frames
//   dropped and counted when the TAP has IFF_VNET_HDR but records are plain),
//   up to MAX_MESSAGE_SIZE or kBurst reads; masked in place (RFC 6455 5.3: a
//   client masks) and sent as ONE binary message through ws::Output. Over the
//   high-water mark the burst is dropped and counted (backpressure), as
//   Uplink.send refusing was.
// - socket -> TAP: the ws::Reader parses in place; a binary message is a
//   batch whose records must tile it (else dropped and counted, as
//   Uplink.receiveBatch did), each record one TAP write (tap.cc's WriteFrame
//   rules: a zero virtio-net header prepended with writev when the TAP wants
//   one and records have none).
// - Text, ping, pong and close go up to JS through a bounded event queue
//   (the thread stops parsing while it is over half full, so a peer that
//   floods control frames meets TCP backpressure, not our memory). JS sends
//   its own messages through the link (SendControl), so writes never
//   interleave: one mutex (tx_mu_) serialises every Output call, held across
//   one non-blocking sendmsg at most.
// - The gate: until Start(vnet_records) the TAP is not read, and after a text
//   message is handed up the socket is not parsed until Start() or a close:
//   the welcome is the first text message, and JS must set the TAP's record
//   format (offload) before the first frame of the connection flows either
//   way. A binary message before Start() fails the connection with 1002
//   "data before welcome", as Uplink did.
// - The end: EOF or a socket error (1006), a parse failure (the reader's close
//   frame is sent first; its code), the closing handshake done (the peer's
//   code), or Terminate(). The thread then shuts the socket down, posts the
//   end event and returns; it touches neither fd after that. The TAP fd is
//   JS's: it must outlive the thread (JS closes the TAP only after the end).
// - Counters are relaxed atomics with one writer (the thread), read by JS at
//   scrape time: no lock on the frame path. Nothing is allocated per frame.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "batch.h"
#include "cpu_follow.h"
#include "ws_frame.h"
#include "ws_output.h"

namespace tapswitch {
namespace wslink {

// The link's own counters (LINK_STAT_* in native/index.d.ts).
enum LinkStat {
  L_UP_FRAMES,             // frames read from the TAP and sent
  L_UP_BURSTS,             // binary messages sent
  L_UP_BYTES,              // bytes of those messages (records)
  L_DROPPED_BACKPRESSURE,  // frames read from the TAP and dropped: the socket's queue over the high-water mark
  L_DOWN_FRAMES,           // frames from the switch written to the TAP
  L_RX_MESSAGES,           // binary messages received (well-formed)
  L_RX_BYTES,              // their bytes
  L_RX_MALFORMED,          // binary messages dropped: a record ran past the end
  L_CPU_MOVES,             // changes of the thread's CPU affinity (cpu_follow.h)
  L_DOWN_RUN_FRAMES,       // of L_DOWN_FRAMES: written as part of a UDP run, one write for many (udp_run.h)
  L_COALESCE_WAITS,        // times a flood's burst (kCoalesceFrames or more) left the TAP to fill for coalesce_us
  L_UDP_RUNS_REFUSED,      // times the kernel refused a UDP run (EINVAL: no USO before 6.2); runs then off
  L_COUNT
};

// Events for JS, in the order they happened. E_NOTICE: something JS should log once, its code a Notice.
enum EventKind : uint8_t { E_TEXT = 1, E_PING = 9, E_PONG = 10, E_CLOSE = 8, E_NOTICE = 0x20, E_END = 0xff };
enum Notice : uint16_t {
  N_UDP_RUNS_REFUSED = 1,  // the kernel refused a UDP run (EINVAL): the link writes every frame alone from now on
};

struct Options {
  int sock_fd = -1;        // owned: closed by the destructor
  int tap_fd = -1;         // JS's: must stay open until the thread ended
  bool vnet_hdr = false;   // the TAP was opened with IFF_VNET_HDR
  bool zero_mask = false;  // mask with zeros (zeroMaskFor said so) instead of random keys
  size_t max_message = 256 << 10;
  size_t high_water = 1 << 20;  // bytes queued before a burst is refused
};

// CLOCK_MONOTONIC in ns (the coalescing deadline's clock).
inline int64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// The records of p[0, n) tile it exactly (protocol.ts countRecords): a batch to trust.
bool Tiles(const uint8_t* p, size_t n);

class Link {
 public:
  explicit Link(const Options& o);
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Bytes the JS socket had read past the handshake: parsed first. False if they do not fit.
  bool Prefill(const uint8_t* p, size_t n) { return rx_.Feed(p, n); }
  // Start the thread; `notify(arg)` (safe from any thread, as uv_async_send)
  // says events wait. Returns 0 or an errno.
  int Run(void (*notify)(void*), void* arg);
  // The welcome is in: records carry the virtio-net header or not; the TAP is read from now on.
  // `follow_busy`: cpu_follow.h's busy_frames (0: the thread keeps its affinity).
  // `udp_runs`: a run of UDP datagrams of one flow goes to the TAP as one write (udp_run.h).
  // `coalesce_us`: after a burst of at least kCoalesceFrames frames from the TAP, the TAP
  // is read again only this many µs later (0: at once), as a NIC's interrupt coalescing (rx-usecs).
  void Start(bool vnet_records, uint32_t follow_busy, bool udp_runs = false, uint32_t coalesce_us = 0);
  // JS's own message (text, ping, pong, close: masked here). Returns
  // ws::Output's result; a close frame also stops data both ways out.
  int SendControl(uint8_t opcode, const uint8_t* p, size_t n);
  // Stop the thread without a closing handshake (ws's terminate()).
  void Terminate();
  // Join the thread (after E_END, or after Terminate()). Idempotent.
  void Join();
  // Take the events queued so far ([u8 kind][u16 BE code][u32 BE len][payload]...),
  // the caller's alone until the next call; clear it when done.
  std::vector<uint8_t>& TakeEvents();
  size_t Queued();
  // Counters: L_COUNT link ones, STAT_COUNT TAP ones (tap.cc's layout).
  void Stats(double* link, double* tap) const;

 private:
  static constexpr uint32_t kBurst = 128;
  // A burst this long is a flood's: the next one waits coalesce_us to fill.
  static constexpr uint32_t kCoalesceFrames = 32;
  // The thread's name (15 characters at most, the kernel's limit).
  static constexpr const char* kThreadName = "tsw-link";
  static constexpr size_t kEventHeader = 7;

  void Loop();
  void Wake();
  bool Burst();
  ssize_t ReadRecord(uint8_t* dst, bool vnet_records);
  void WriteBatch(const uint8_t* p, size_t n, bool vnet_records);
  bool WriteRun(const uint8_t* p, size_t off, size_t k, size_t head, uint64_t* written, uint64_t* bytes,
                uint64_t* dropped, uint64_t* errors);
  bool HandleMessage(const ws::Message& m);
  bool ParseSome();
  bool ReadSocket();
  void PushEvent(uint8_t kind, uint16_t code, const uint8_t* p, size_t n);
  ws::Output::Result SendLocked(uint8_t opcode, uint8_t* payload, size_t n, bool data);
  void CloseWith(uint16_t code, const char* reason);
  void End(uint16_t code, const uint8_t* reason, size_t n);
  void NextMask(uint8_t mask[4], std::vector<uint8_t>& pool, size_t& at);
  // Bytes read from the socket: cpu_follow.h may narrow the thread's affinity.
  void Arrived() {
    if (!follow_init_) return;
    follow_.Arrived();
    PublishMoves();
  }
  // Frames carried this turn: cpu_follow.h may widen the thread's affinity.
  void Carried(uint64_t frames, bool down) {
    if (!follow_init_) return;
    follow_.Carried(static_cast<uint32_t>(frames), down);
    PublishMoves();
  }
  void PublishMoves() { link_[L_CPU_MOVES].store(follow_.moves(), std::memory_order_relaxed); }
  void Count(std::atomic<uint64_t>* c, int i, uint64_t n) {
    c[i].store(c[i].load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  Options o_;
  int efd_ = -1;
  std::thread thread_;
  void (*notify_)(void*) = nullptr;
  void* notify_arg_ = nullptr;
  std::atomic<bool> stop_{false};
  std::atomic<bool> started_{false};
  std::atomic<uint32_t> follow_busy_{0};  // set by Start, read by the thread when it sees started_
  bool follow_init_ = false;              // the thread's own from here
  CpuFollow follow_;
  std::atomic<bool> vnet_records_{false};
  std::atomic<bool> udp_runs_{false};     // set by Start: the operator turned runs on (--udp-runs)
  std::atomic<uint32_t> coalesce_us_{0};  // set by Start: the TAP's coalescing delay (--coalesce-usecs)
  std::atomic<bool> gated_{false};        // a text message went up before Start(): parse no more until then
  std::atomic<bool> ended_{false};

  // The thread's own.
  ws::Reader rx_;
  std::vector<uint8_t> burst_;      // [u32 len][record]... of one TAP burst
  std::vector<uint8_t> mask_pool_;  // random mask keys, drawn from getrandom(2) in blocks
  size_t mask_at_ = 0;
  bool tap_gone_ = false;      // the TAP reported an error or hang-up: no longer polled
  bool runs_ = true;           // UDP runs go as one write (udp_run.h); off once the kernel refused one
  int64_t tap_resume_ns_ = 0;  // CLOCK_MONOTONIC: the TAP is not read before this (coalescing); 0: no wait

  // Under tx_mu_: every send, and whether our close frame went out.
  std::mutex tx_mu_;
  ws::Output tx_;
  bool close_sent_ = false;
  std::vector<uint8_t> js_buf_, js_pool_;  // JS's messages, masked; JS's mask keys
  size_t js_mask_at_ = 0;

  // Under ev_mu_: events for JS.
  std::mutex ev_mu_;
  std::vector<uint8_t> events_, draining_;
  size_t ev_cap_;

  std::atomic<uint64_t> link_[L_COUNT];
  std::atomic<uint64_t> tap_[STAT_COUNT];
};

}  // namespace wslink
}  // namespace tapswitch
