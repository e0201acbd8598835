// The fast path's datapath (fastpath.cc is its face to JS; the design is
// there): the port slots, the exact-match flow table, the queue of misses for
// JS, and the thread that reads bursts, writes the hits and queues the rest.
// Plain C++: no N-API. The tables have no lock of their own: Datapath's mutex
// guards them, and is never held across a system call. Nothing is allocated
// after construction.
#pragma once

#include <string.h>

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

// Misses waiting for JS, as [u32 BE slot][u32 BE length][record] entries in
// one buffer reserved at its cap (beyond it: refused, for a counted drop).
class MissQueue {
 public:
  explicit MissQueue(size_t cap) : cap_(cap) {
    pending_.reserve(cap);
    draining_.reserve(cap);
  }

  bool Push(int slot, const uint8_t* rec, size_t len) {
    if (pending_.size() + 8 + len > cap_) return false;
    const size_t at = pending_.size();
    pending_.resize(at + 8 + len);  // within the reserved capacity: no allocation
    WriteBE32(&pending_[at], static_cast<uint32_t>(slot));
    WriteBE32(&pending_[at + 4], static_cast<uint32_t>(len));
    memcpy(&pending_[at + 8], rec, len);
    return true;
  }

  // Forget a slot's entries: the slot may be reused before they are drained.
  void DropSlot(int slot) {
    size_t w = 0;
    for (size_t r = 0; r < pending_.size();) {
      const size_t n = 8 + ReadBE32(&pending_[r + 4]);
      if (ReadBE32(&pending_[r]) != static_cast<uint32_t>(slot)) {
        if (w != r) memmove(&pending_[w], &pending_[r], n);
        w += n;
      }
      r += n;
    }
    pending_.resize(w);
  }

  // Take everything queued so far (both buffers are reserved at the cap: no
  // allocation); the caller reads draining() without the lock, then clears it.
  void Take() { draining_.swap(pending_); }
  std::vector<uint8_t>& draining() { return draining_; }

 private:
  size_t cap_;
  std::vector<uint8_t> pending_, draining_;
};

// Per-port counters, cumulative (PORT_STAT_* in native/index.d.ts).
enum { P_RX_FRAMES, P_RX_BYTES, P_TX_FRAMES, P_TX_BYTES, P_TX_DROPPED, P_COUNT };
// Table-wide counters (FastPath#stats()).
enum { F_HITS, F_MISSES, F_MISS_DROPPED, F_FLOWS, F_COUNT };

constexpr size_t kMaxPorts = 1024;

// Every method but the thread's own is for the main thread; all are safe
// while the thread runs.
class Datapath {
 public:
  Datapath(size_t max_flows, size_t miss_bytes);
  ~Datapath() { Stop(); }
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  // Start the thread; `notify(arg)` is called from it, without the lock,
  // after a burst queued misses (it must be safe from any thread, as
  // uv_async_send is). Returns 0, or an errno (eventfd).
  int Start(void (*notify)(void*), void* arg);
  // Stop and join the thread. Idempotent.
  void Stop();

  // The slot now reading `fd` (non-blocking; `vnet`: records start with a virtio-net header), or -1: all taken.
  int AddPort(int fd, bool vnet);
  // Forget the slot, its flows and its queued misses; once this returns the
  // thread never reads or writes its fd again (it waits for a burst in flight).
  void RemovePort(int slot);
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
  // The misses queued so far ([u32 BE slot][u32 BE length][record]...), the
  // main thread's alone until the next call; clear it when done.
  std::vector<uint8_t>& TakeMisses();

 private:
  struct PortSlot {
    int fd = -1;  // -1 = free
    bool vnet = false;
    double stats[P_COUNT] = {};
  };
  // One frame of a burst: where it lies in the burst buffer, and (a hit) where it goes.
  struct BurstFrame {
    size_t off = 0, len = 0;
    int out = -1;  // egress slot; -1 = not forwarded here
    int fd = -1;   // that slot's fd when decided
    bool sent = false;
  };
  // One burst: at most this many reads, and it stops reading once it holds
  // this many bytes (a burst of 64 KiB GSO frames decides and writes a few at a time).
  static constexpr uint32_t kBurst = 64;
  static constexpr size_t kBurstBytes = 256 << 10;

  void Wake();
  void Run();
  bool Burst(int slot, int fd);
  uint32_t ReadBurst(int fd);
  bool Decide(int slot, int fd, size_t hdr, uint32_t n);
  void WriteHits(uint32_t n);
  void Publish(uint32_t n, size_t hdr);

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
  uint64_t ports_gen_ = 0;
  uint64_t bursts_begun_ = 0, bursts_done_ = 0;
  double stats_[F_COUNT] = {};
  // The thread's own: the frames of the burst in flight.
  std::vector<uint8_t> burst_;
  BurstFrame frames_[kBurst];
};

}  // namespace fastpath
}  // namespace tapswitch
