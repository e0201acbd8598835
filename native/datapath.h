// The fast path's datapath (fastpath.cc is its face to JS; the design is
// there): the port slots (a TAP, or a WebSocket port: ws_conn.h), the
// exact-match flow table, the queue of misses and events for JS, and the
// thread that reads bursts, writes the hits and queues the rest. Plain C++:
// no N-API. The tables have no lock of their own: Datapath's mutex guards
// them, and is never held across a system call. Nothing is allocated after
// construction but a WebSocket port's connection (at AddWsPort).
#pragma once

#include <poll.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "batch.h"
#include "ws_conn.h"

namespace tapswitch {
namespace fastpath {

// The longest record a TAP read gives: a virtio-net header and a frame.
constexpr size_t kMaxRecord = kMaxFrame + kVnetHdrLen;

// Exact match: (ingress slot, dst MAC, src MAC).
struct Key {
  uint64_t dst;       // 48 bits
  uint64_t src_slot;  // src MAC << 16 | ingress slot
  bool operator==(const Key& o) const { return dst == o.dst && src_slot == o.src_slot; }
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = k.dst * 0x9E3779B97F4A7C15ull ^ (k.src_slot + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

struct Flow {
  Key key;
  int out = -1;          // egress slot; -1 = free
  size_t max_frame = 0;  // the network's largest frame when installed (a reload flushes every flow)
  double hits = 0;
};

inline uint64_t Mac(const uint8_t* p) {
  return (uint64_t(p[0]) << 40) | (uint64_t(p[1]) << 32) | (uint64_t(p[2]) << 24) | (uint64_t(p[3]) << 16) |
         (uint64_t(p[4]) << 8) | uint64_t(p[5]);
}

// Flows by index (JS keeps its own copy of each decision by that index), a
// free list, and the index by key; the capacity is fixed at construction.
class FlowTable {
 public:
  explicit FlowTable(size_t max_flows) : flows_(max_flows) {
    free_.reserve(max_flows);
    for (size_t i = max_flows; i-- > 0;) free_.push_back(static_cast<int>(i));
    index_.reserve(max_flows * 2);
  }

  // The flow's index (an existing one is updated), or -1 when the table is full.
  int Install(const Key& k, int out, size_t max_frame) {
    auto it = index_.find(k);
    if (it != index_.end()) {
      flows_[it->second].out = out;
      flows_[it->second].max_frame = max_frame;
      return it->second;
    }
    if (free_.empty()) return -1;
    const int f = free_.back();
    free_.pop_back();
    flows_[f] = Flow{k, out, max_frame, 0};
    index_.emplace(k, f);
    return f;
  }

  void Remove(int f) {
    if (f < 0 || static_cast<size_t>(f) >= flows_.size() || flows_[f].out < 0) return;
    index_.erase(flows_[f].key);
    flows_[f].out = -1;
    free_.push_back(f);
  }

  void Clear() {
    for (auto& kv : index_) {
      flows_[kv.second].out = -1;
      free_.push_back(kv.second);
    }
    index_.clear();
  }

  // The frame's flow, or nullptr: a miss. `rec` is what read(2) gave: `hdr`
  // bytes of virtio-net header, then the frame (fastpath.cc has the rules).
  Flow* Match(int slot, const uint8_t* rec, size_t len, size_t hdr);

  size_t size() const { return index_.size(); }
  size_t capacity() const { return flows_.size(); }
  double hits(size_t f) const { return flows_[f].hits; }

 private:
  std::vector<Flow> flows_;
  std::vector<int> free_;
  std::unordered_map<Key, int, KeyHash> index_;
};

// What a WebSocket port's peer sent that JS must see (a miss is kind 0).
enum EventKind : uint8_t { E_MISS = 0, E_TEXT = 1, E_PING = 2, E_PONG = 3, E_MALFORMED = 4 };

// Misses and events waiting for JS, as [u32 BE kind << 24 | slot][u32 BE
// length][record or payload] entries in one buffer reserved at its cap
// (beyond it: refused, for a counted drop). One queue keeps a port's misses
// and its text messages in the order they came.
class MissQueue {
 public:
  // `slots` ports, each charged to an account: by default its own; SetAccount
  // puts WebSocket ports of one client in one (a per-client share).
  MissQueue(size_t cap, size_t slots) : cap_(cap), account_of_(slots), per_account_(2 * slots, 0) {
    for (size_t i = 0; i < slots; i++) account_of_[i] = slots + i;
    pending_.reserve(cap);
    draining_.reserve(cap);
  }

  // The slot's entries are charged to `account` (< slots: a client's index; the default is the slot's own).
  void SetAccount(int slot, size_t account) {
    account_of_[static_cast<size_t>(slot)] = account < account_of_.size() ? account : account_of_.size() + slot;
  }

  bool Push(int slot, const uint8_t* rec, size_t len, uint8_t kind = E_MISS) {
    if (pending_.size() + 8 + len > cap_) return false;
    if (slot >= 0 && static_cast<size_t>(slot) < account_of_.size()) per_account_[account_of_[slot]] += 8 + len;
    const size_t at = pending_.size();
    pending_.resize(at + 8 + len);  // within the reserved capacity: no allocation
    WriteBE32(&pending_[at], static_cast<uint32_t>(slot) | (uint32_t(kind) << 24));
    WriteBE32(&pending_[at + 4], static_cast<uint32_t>(len));
    if (len > 0) memcpy(pending_.data() + at + 8, rec, len);  // not &pending_[at + 8]: at + 8 may be size()
    return true;
  }

  // Forget a slot's entries: the slot may be reused before they are drained.
  void DropSlot(int slot) {
    size_t w = 0, dropped = 0;
    for (size_t r = 0; r < pending_.size();) {
      const size_t n = 8 + ReadBE32(&pending_[r + 4]);
      if ((ReadBE32(&pending_[r]) & 0xffffff) != static_cast<uint32_t>(slot)) {
        if (w != r) memmove(&pending_[w], &pending_[r], n);
        w += n;
      } else {
        dropped += n;
      }
      r += n;
    }
    pending_.resize(w);
    if (slot < 0 || static_cast<size_t>(slot) >= account_of_.size()) return;
    size_t& a = per_account_[account_of_[slot]];
    a -= std::min(a, dropped);
    SetAccount(slot, account_of_.size());  // back to its own
  }

  size_t room() const { return cap_ - pending_.size(); }
  size_t cap() const { return cap_; }
  // Bytes waiting for JS charged to the slot's account (its client's, for a
  // WebSocket port): the share of the queue that client uses.
  size_t queued(int slot) const { return per_account_[account_of_[static_cast<size_t>(slot)]]; }

  // Take everything queued so far (both buffers are reserved at the cap: no
  // allocation); the caller reads draining() without the lock, then clears it.
  void Take() {
    draining_.swap(pending_);
    std::fill(per_account_.begin(), per_account_.end(), 0);
  }
  std::vector<uint8_t>& draining() { return draining_; }

 private:
  size_t cap_;
  std::vector<size_t> account_of_, per_account_;
  std::vector<uint8_t> pending_, draining_;
};

// Per-port counters, cumulative (PORT_STAT_* in native/index.d.ts).
enum { P_RX_FRAMES, P_RX_BYTES, P_TX_FRAMES, P_TX_BYTES, P_TX_DROPPED, P_COUNT };
// Table-wide counters (FastPath#stats()).
enum { F_HITS, F_MISSES, F_MISS_DROPPED, F_FLOWS, F_COUNT };

// A WebSocket port's end, as JS hears it once: the close code (1006: no close
// frame), whether we sent the close frame ourselves (a failure we detected),
// and the reason (the peer's, or ours).
struct WsClosed {
  int slot = -1;
  uint16_t code = 0;
  bool local = false;
  uint8_t reason_len = 0;
  char reason[ws::kMaxControl] = {};
};

constexpr size_t kMaxPorts = 1024;

// Every method but the thread's own is for the main thread; all are safe
// while the thread runs.
class Datapath {
 public:
  // `max_message`: the largest WebSocket message either way (a batch the
  // thread sends a WebSocket port is cut to fit it).
  Datapath(size_t max_flows, size_t miss_bytes, size_t max_message);
  ~Datapath() { Stop(); }
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  // Start the thread; `notify(arg)` is called from it, without the lock,
  // after a burst queued misses or events (it must be safe from any thread,
  // as uv_async_send is). Returns 0, or an errno (eventfd).
  int Start(void (*notify)(void*), void* arg);
  // Stop and join the thread. Idempotent.
  void Stop();

  // The slot now reading `fd` (non-blocking; `vnet`: records start with a virtio-net header), or -1: all taken.
  int AddPort(int fd, bool vnet);
  // The slot now carrying the WebSocket connection on `fd` (server role; the
  // datapath owns `fd` from now on, closed when the slot is removed), with
  // `prefill` bytes already read off it; `hwm`: the bytes queued for it past
  // which a batch is dropped (counted). -1: all taken; -2: the prefill does
  // not fit the reader (`fd` is then closed too).
  // `client`: the index of the port's client (ports of one client share one
  // share of the miss queue), or kMaxPorts and above for a share of its own.
  int AddWsPort(int fd, bool vnet, const uint8_t* prefill, size_t prefill_len, size_t hwm, size_t client);
  // Forget the slot, its flows and its queued misses; once this returns the
  // thread never reads or writes its fd again (it waits for a burst in
  // flight). A WebSocket slot's queued bytes get one non-blocking try, then
  // its connection is shut down and closed.
  void RemovePort(int slot);
  // One whole message to a WebSocket slot (main thread): ws::Output::Result
  // (kBroken too for a slot that is not one). A close frame stops forwarding
  // the slot's data either way: the port is closing.
  int SendWs(int slot, uint8_t opcode, const uint8_t* p, size_t n);
  // Bytes queued for a WebSocket slot (its bufferedAmount).
  size_t WsBuffered(int slot);
  // Bytes the WebSocket slots' connections hold in memory now (tests: no growth per port).
  size_t WsFootprint();
  // (in, dst, src) -> out for frames up to max_frame bytes: the flow's index, or -1 (full, or ports that cannot pair).
  int Install(int in, uint64_t dst, uint64_t src, int out, size_t max_frame);
  void Remove(int flow);
  // Forget every flow; once this returns no frame decided under them is written (it waits for a burst in flight).
  void Flush();
  // Cumulative hits of flows [0, n) into out (n is capped at the table's size).
  void FlowHits(double* out, size_t n);
  // The slot's P_COUNT counters into out.
  void PortStats(int slot, double* out);
  // The F_COUNT counters into out.
  void Stats(double* out);
  // The misses and events queued so far ([u32 BE kind << 24 | slot][u32 BE
  // length][record]...), and the WebSocket ports that ended, the main
  // thread's alone until the next call; clear both when done.
  std::vector<uint8_t>& TakeMisses(std::vector<WsClosed>** closed);
  // JS has handled everything TakeMisses gave it (text included): held slots are read again.
  void Drained();

 private:
  struct PortSlot {
    int fd = -1;  // -1 = free
    bool vnet = false;
    double stats[P_COUNT] = {};
    // A WebSocket port (null: a TAP). Made and destroyed by the main thread
    // only, so it may read the pointer without the lock.
    std::unique_ptr<ws::Conn> ws;
    size_t hwm = 0;
    bool closing = false;  // a close frame went out, or its batch was malformed: its data is no longer forwarded
    bool dead = false;     // the thread stopped polling it; JS heard (or will hear) why
    bool kick = false;     // bytes wait in its reader (a prefill): parse them without waiting for a read
    bool stalled = false;  // not read until JS drains the misses: its peer waits (TCP backpressure), nothing is dropped
    // A text message of it went to JS, which may close the port for it (BPDU guard, invalid UTF-8): from
    // then on its batches are misses, and it is not read until JS has handled that drain (Drained()), so
    // nothing it sent after the text is forwarded natively where the JS path would not read it.
    bool held = false;
  };
  // One hit of a burst: the record ([u32 BE length][frame]) and where it goes,
  // chained per egress in the order read.
  struct Hit {
    const uint8_t* rec = nullptr;
    size_t len = 0;  // the frame's length (the record's payload)
    int out = -1;
    int next = -1;
    bool sent = false;
  };
  // An egress of the burst in flight: its fd and connection when decided, its chain of hits.
  struct Egress {
    int fd = -1;
    ws::Conn* conn = nullptr;
    size_t hwm = 0;
    int head = -1, tail = -1;
    bool broken = false;
  };
  // One burst: at most this many reads, and it stops reading once it holds
  // this many bytes (a burst of 64 KiB GSO frames decides and writes a few at a time).
  static constexpr uint32_t kBurst = 64;
  // The thread's name (15 characters at most, the kernel's limit).
  static constexpr const char* kThreadName = "tsw-datapath";
  static constexpr size_t kBurstBytes = 256 << 10;
  // Hits one burst holds (a WebSocket read of 64 KiB has at most ~3,600 records).
  static constexpr int kMaxHits = 8192;

  void Wake();
  void Run();
  void BuildPollSet(std::vector<struct pollfd>* fds, std::vector<int>* slots);
  bool Burst(int slot, int fd);
  bool WsBurst(int slot, int fd);
  void WsFlush(int slot, int fd);
  uint32_t ReadBurst(int fd);
  bool Decide(int slot, int fd, size_t hdr, uint32_t n);
  bool DecideRecord(int slot, PortSlot& in, const uint8_t* rec, size_t len, size_t hdr);
  // How a WebSocket port ends in a burst (code 0: it does not): its close code, whether we close it (a failure), why.
  struct WsEnd {
    uint16_t code = 0;
    bool local = false;
    const uint8_t* reason = nullptr;
    size_t reason_len = 0;
  };
  bool ParseWs(int slot, PortSlot& in, size_t hdr, const uint8_t* lo, const uint8_t* hi, WsEnd* end);
  int DecideWsMessage(int slot, PortSlot& in, const ws::Message& m, size_t hdr, bool in_place);
  bool Event(int slot, uint8_t kind, const uint8_t* p, size_t n);
  void EndWs(int slot, uint16_t code, bool local, const uint8_t* reason, size_t reason_len);
  void BeginHits();
  void WriteHits();
  void SendBatch(Egress& e, int from);
  void Publish(size_t hdr);

  const size_t max_message_;
  std::mutex mu_;
  std::condition_variable idle_;  // bursts_done_ moved
  std::thread thread_;
  std::atomic<bool> stop_{false};
  int efd_ = -1;
  // Set before the thread starts, never changed while it runs.
  void (*notify_)(void*) = nullptr;
  void* notify_arg_ = nullptr;
  // Under mu_:
  FlowTable flows_;
  MissQueue misses_;
  std::vector<PortSlot> ports_;
  std::vector<WsClosed> closed_, closed_draining_;
  uint64_t ports_gen_ = 0;
  uint64_t bursts_begun_ = 0, bursts_done_ = 0;
  double stats_[F_COUNT] = {};
  // The thread's own: the frames and hits of the burst in flight.
  std::vector<uint8_t> burst_;
  struct BurstFrame {
    size_t off = 0, len = 0;  // the record at burst_[off]: [u32 BE len][frame of len bytes]
  };
  BurstFrame frames_[kBurst];
  std::vector<Hit> hits_;
  int nhits_ = 0;
  std::vector<Egress> egress_;  // by slot
  std::vector<int> touched_;    // egress slots of the burst in flight, in first-hit order
  bool owed_ = false;           // an end was queued outside a burst's own answer: notify JS
  bool any_stalled_ = false;    // under mu_: some WebSocket slot waits for the misses to drain
  bool any_held_ = false;       // under mu_: some WebSocket slot waits for JS to handle its text
};

}  // namespace fastpath
}  // namespace tapswitch
