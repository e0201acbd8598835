// tap-agent's link thread runs where its connection's frames arrive while the
// link is quiet, and by the way its frames go once it is busy (issue 24).
//
// Why: an idle ping through the agent path is handed from thread to thread
// five times (agent, switchd, agent, switchd, agent). The scheduler wakes each
// thread on the CPU it last ran on when that CPU is idle, and on a virtual
// machine whose idle vCPUs halt, waking a halted vCPU is the dearest step of a
// hop: the waker stalls ~25 µs sending the IPI and the woken thread runs 50-80
// µs later (docs/BENCHMARKS.md has the trace). A thread that ran on the CPU
// its peer's frames are processed on is woken there, behind the peer, for a
// few µs instead. The kernel records that CPU per socket (SO_INCOMING_CPU: for
// loopback the sender's, for a NIC the one that processed its receive).
//
// So while the link is quiet (at most `busy_frames` frames a tick of kTickNs),
// after each read from the socket the thread narrows its affinity to that CPU,
// only ever within the mask it started with (a cpuset or taskset is obeyed;
// one set from outside while it runs stops this connection's thread following).
// A busier tick gives it the whole mask back at once, and so does a CPU it
// shares with others: if it waited to run for more than a tenth of the time
// (its run_delay in /proc/thread-self/schedstat), as N quiet links following
// one switch onto one CPU would. It follows again only after a tick of at most
// a quarter of busy_frames and no such wait. Per read while quiet: one
// getsockopt(2); a sched_setaffinity(2) only when the CPU changes, at most once
// a tick.
//
// While a flood goes on, each busy tick's end places the thread by where its
// frames went, against the uplink's incoming CPU (the switch's thread): mostly
// down, anywhere but there; mostly up, there; both ways, the whole mask (Place).
// Why: two agents on one host, one flooding up and one writing down, that share
// a CPU leave the receiving guest too little of the machine: on 2 vCPUs most of
// a 64-byte UDP flood was dropped at its socket (docs/BENCHMARKS.md). Crowded
// where it was placed (either way), it takes the whole mask for kHoldTicks.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

namespace tapswitch {
namespace wslink {

class CpuFollow {
 public:
  static constexpr uint64_t kTickNs = 10 * 1000 * 1000;
  static constexpr uint64_t kHoldTicks = 50;
  static constexpr uint32_t kCrowdedTicks = 3;

  CpuFollow() {
    CPU_ZERO(&whole_);
    CPU_ZERO(&mine_);
  }
  ~CpuFollow() {
    if (stat_fd_ >= 0) close(stat_fd_);
  }
  CpuFollow(const CpuFollow&) = delete;
  CpuFollow& operator=(const CpuFollow&) = delete;

  // On the link's thread, before any frame: `busy_frames` 0 turns it off. `sock_fd`: the uplink's.
  void Init(uint32_t busy_frames, int sock_fd) {
    busy_frames_ = busy_frames;
    sock_fd_ = sock_fd;
    if (busy_frames == 0 || sched_getaffinity(0, sizeof whole_, &whole_) != 0 || CPU_COUNT(&whole_) < 2) {
      busy_frames_ = 0;  // off, or nothing to choose from
      return;
    }
    mine_ = whole_;
    // This thread's own: opened here, on it. Without it (no schedstats) contention is not seen.
    stat_fd_ = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    Sched(&ran_seen_, &delay_seen_);
  }

  // A read from the socket returned bytes: follow the CPU they came in on (while quiet), at most
  // once a tick, so a peer whose frames arrive on a different CPU each time costs one move a tick.
  void Arrived() {
    if (busy_frames_ == 0 || busy_) return;
    const int cpu = IncomingCpu();
    if (cpu < 0 || (CPU_COUNT(&mine_) == 1 && CPU_ISSET(cpu, &mine_))) return;
    const uint64_t now = Now();
    if (moved_ != 0 && now - moved_ < kTickNs) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (Set(one)) moved_ = now;
  }

  // Frames carried this turn, `down` (socket to TAP) or up. A tick busier than busy_frames gives the
  // whole mask back at once; each busy tick after it places the thread by where the work went.
  void Carried(uint32_t frames, bool down) {
    if (busy_frames_ == 0 || frames == 0) return;
    const uint64_t now = Now();
    bool contended = false;
    if (now - tick_ >= kTickNs) {
      // A tick ended (or a gap longer than one: the link was quiet in between). Did the thread wait
      // to run for more than a tenth of the time since the last look?
      uint64_t ran = 0, delay = 0;
      Sched(&ran, &delay);
      const bool gap = now - tick_ >= 2 * kTickNs;
      const uint64_t waited = tick_ != 0 && delay >= delay_seen_ ? delay - delay_seen_ : 0;
      const uint64_t worked = tick_ != 0 && ran >= ran_seen_ ? ran - ran_seen_ : 0;
      contended = waited > (now - tick_) / 10;
      delay_seen_ = delay;
      ran_seen_ = ran;
      if (!contended && (gap || in_tick_ <= busy_frames_ / 4)) busy_ = false;
      if (busy_) {
        // Placed on fewer CPUs than its mask (busy and narrowed: only Place narrows then) and waiting
        // to run half as long again as it ran, kCrowdedTicks ticks in a row: crowded there (other
        // agents' busy uplinks placed with the same switch; on 2 CPUs "all but the switch's" is one
        // CPU, maybe a busy one). The whole mask for kHoldTicks, then try again. Looked at on every
        // busy tick, also one it carried little in or came late to: a starved thread does both.
        const bool placed = !CPU_EQUAL(&mine_, &whole_);
        crowded_ = placed && 2 * waited > 3 * worked ? crowded_ + 1 : 0;
        if (crowded_ >= kCrowdedTicks) {
          crowded_ = 0;
          Set(whole_);
          hold_until_ = now + kHoldTicks * kTickNs;
        } else if (!gap && in_tick_ > busy_frames_ && now >= hold_until_) {
          Place(down_tick_, in_tick_ - down_tick_);
        }
      }
      tick_ = now;
      in_tick_ = 0;
      down_tick_ = 0;
    }
    in_tick_ += frames;
    if (down) down_tick_ += frames;
    if (!busy_ && (in_tick_ > busy_frames_ || contended)) {
      busy_ = true;
      Set(whole_);
    }
  }

  // Affinity changes so far (narrowed or widened).
  uint64_t moves() const { return moves_; }

  // Tests only (fuzz/cpu_follow_test.cc): read the run and wait times from `fd`, in schedstat's
  // format, instead of this thread's own, so a wait to run can be shown without crowding a CPU.
  // Takes the fd (closed with this). After Init.
  void UseSchedstatForTest(int fd) {
    if (stat_fd_ >= 0) close(stat_fd_);
    stat_fd_ = fd;
    Sched(&ran_seen_, &delay_seen_);
  }

 private:
  // A whole busy tick: the thread and the switch's thread that feeds it or takes its frames
  // (SO_INCOMING_CPU again: the CPU the uplink's last packet, data or ACK, came in on).
  // Frames mostly down: anywhere but that CPU, so the switch's sends and our TAP writes (which run
  // the receiving guest's stack and wake it) go on in parallel. Mostly up: that CPU, so the two
  // agents of a one-host flow never share a CPU while a third is idle. Both ways: the whole mask.
  void Place(uint64_t down, uint64_t up) {
    const int cpu = IncomingCpu();
    cpu_set_t want = whole_;
    if (cpu >= 0 && down > 2 * up) {
      CPU_CLR(cpu, &want);
    } else if (cpu >= 0 && up > 2 * down) {
      CPU_ZERO(&want);
      CPU_SET(cpu, &want);
    }
    Set(want);
  }
  // The CPU that processed the uplink's last packet, if it is one this thread may run on; else -1.
  int IncomingCpu() const {
    int cpu = -1;
    socklen_t len = sizeof cpu;
    if (getsockopt(sock_fd_, SOL_SOCKET, SO_INCOMING_CPU, &cpu, &len) != 0) return -1;
    return cpu >= 0 && cpu < CPU_SETSIZE && CPU_ISSET(cpu, &whole_) ? cpu : -1;
  }
  // The thread's affinity to `want` (a subset of whole_), if it changes and nobody else set it.
  bool Set(const cpu_set_t& want) {
    if (CPU_EQUAL(&want, &mine_) || !Untouched()) return false;
    if (sched_setaffinity(0, sizeof want, &want) != 0) return false;
    mine_ = want;
    moves_++;
    return true;
  }
  // The affinity is still what this class left it: else someone else set it (taskset -p, a cpuset
  // change), and theirs wins: this thread (this connection's) stops following.
  bool Untouched() {
    cpu_set_t cur;
    if (sched_getaffinity(0, sizeof cur, &cur) == 0 && CPU_EQUAL(&cur, &mine_)) return true;
    busy_frames_ = 0;
    return false;
  }
  // Nanoseconds this thread ran and waited on a run queue so far (both 0 if unknown: never contended).
  void Sched(uint64_t* ran, uint64_t* waited) const {
    *ran = *waited = 0;
    if (stat_fd_ < 0) return;
    char b[96];
    const ssize_t n = pread(stat_fd_, b, sizeof b - 1, 0);
    if (n <= 0) return;
    b[n] = 0;
    char* end = nullptr;
    *ran = strtoull(b, &end, 10);
    *waited = strtoull(end, nullptr, 10);
  }
  static uint64_t Now() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
  }

  uint32_t busy_frames_ = 0;
  int sock_fd_ = -1;
  cpu_set_t whole_;  // the mask the thread started with
  cpu_set_t mine_;   // the mask this class last set (whole_ at first)
  bool busy_ = false;
  uint64_t tick_ = 0, in_tick_ = 0, down_tick_ = 0, moves_ = 0;
  uint64_t moved_ = 0;       // when it last narrowed while quiet
  uint64_t hold_until_ = 0;  // crowded where it was placed: the whole mask until then
  uint32_t crowded_ = 0;     // busy ticks in a row it waited where placed 1.5x what it ran
  int stat_fd_ = -1;         // /proc/thread-self/schedstat
  uint64_t delay_seen_ = 0, ran_seen_ = 0;
};

}  // namespace wslink
}  // namespace tapswitch
