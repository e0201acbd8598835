// CpuFollow's wait rule alone (test/integration/cpu-follow-native.test.ts builds and runs it): a
// quiet link's thread, narrowed to the CPU its uplink's packets come in on, takes its whole mask back
// when it waited to run there for more than a tenth of a tick, and only then. The integration test
// with spinners cannot tell this rule from the following (the switch's thread moves off the spinners
// too); here the wait is read from a file in schedstat's format, so nothing else can move the thread.
//
// The uplink is a TCP connection on 127.0.0.1 whose sender runs on one CPU: SO_INCOMING_CPU then
// names that CPU (loopback processes a packet on its sender's CPU).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <chrono>
#include <string>
#include <thread>
#include "../native/cpu_follow.h"
using tapswitch::wslink::CpuFollow;

static bool Pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  return sched_setaffinity(0, sizeof s, &s) == 0;
}

static int Cpus() {
  cpu_set_t s;
  return sched_getaffinity(0, sizeof s, &s) == 0 ? CPU_COUNT(&s) : 0;
}

// A connected pair on 127.0.0.1: *server is the uplink's end the follower reads.
static bool Connect(int* client, int* server) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t n = sizeof a;
  if (l < 0 || bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(l, 1) != 0 ||
      getsockname(l, reinterpret_cast<sockaddr*>(&a), &n) != 0)
    return false;
  *client = socket(AF_INET, SOCK_STREAM, 0);
  if (*client < 0 || connect(*client, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return false;
  *server = accept(l, nullptr, nullptr);
  close(l);
  return *server >= 0;
}

// A schedstat-format file whose contents the test sets: "ran waited 0".
struct FakeStat {
  char path[32] = "/tmp/tsw-schedstat-XXXXXX";
  int fd = mkstemp(path);
  void Set(uint64_t ran, uint64_t waited) {
    const std::string s = std::to_string(ran) + " " + std::to_string(waited) + " 0\n";
    if (ftruncate(fd, 0) != 0 || pwrite(fd, s.data(), s.size(), 0) != static_cast<ssize_t>(s.size())) abort();
  }
};

static int OneCpu() {
  cpu_set_t s;
  if (sched_getaffinity(0, sizeof s, &s) != 0 || CPU_COUNT(&s) != 1) return -1;
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &s)) return c;
  return -1;
}

// One case, on a thread of its own (it narrows its own affinity). `waited_ns`: the wait the file
// shows over one tick. Returns what the thread's mask was after: 1 CPU (held) or its whole mask.
static int Case(uint64_t waited_ns, int* cpus_after, std::string* why) {
  int result = 1;
  std::thread t([&] {
    int client, server;
    if (!Connect(&client, &server)) {
      *why = "loopback connect failed";
      return;
    }
    CpuFollow f;
    f.Init(64, server);
    // The sender's packet comes in on CPU 1: the follower narrows to it.
    std::thread sender([&] {
      if (Pin(1) && write(client, "x", 1) != 1) abort();
    });
    sender.join();
    char b;
    if (read(server, &b, 1) != 1) {
      *why = "read failed";
      return;
    }
    f.Arrived();
    if (OneCpu() != 1 || f.moves() != 1) {
      *why = "did not follow to CPU 1 (SO_INCOMING_CPU)";
      return;
    }
    FakeStat st;
    if (st.fd < 0) {
      *why = "mkstemp failed";
      return;
    }
    unlink(st.path);
    st.Set(1000000, 0);
    f.UseSchedstatForTest(st.fd);
    f.Carried(1, true);  // the first tick starts: nothing to compare yet
    std::this_thread::sleep_for(std::chrono::milliseconds(11));
    // Over that tick (11 ms or, on a busy machine, more) it ran 1 ms more and waited waited_ns.
    st.Set(2000000, waited_ns);
    f.Carried(1, true);  // a quiet tick: one frame
    *cpus_after = Cpus();
    close(client);
    close(server);
    result = 0;
  });
  t.join();
  return result;
}

int main() {
  if (Cpus() < 2) {
    // One CPU: nothing to choose from, so CpuFollow is off and never moves the thread.
    int client, server;
    if (!Connect(&client, &server)) return printf("not ok - loopback connect failed\n"), 1;
    CpuFollow f;
    f.Init(64, server);
    char b;
    if (write(client, "x", 1) != 1 || read(server, &b, 1) != 1) return printf("not ok - loopback write\n"), 1;
    f.Arrived();
    f.Carried(1000, true);
    if (f.moves() != 0) return printf("not ok - moved on one CPU\n"), 1;
    return printf("ok - one CPU: it never moves\n"), 0;
  }
  const int whole = Cpus();
  std::string why;
  int after = 0;
  // A wait of 10 s "over one tick": more than a tenth of any tick a busy machine could stretch it to.
  if (Case(10000000000ull, &after, &why) != 0) return printf("not ok - %s\n", why.c_str()), 1;
  if (after != whole) return printf("not ok - waited to run, still held on %d CPU(s) of %d\n", after, whole), 1;
  // No wait: the quiet link stays where its packets come in.
  if (Case(0, &after, &why) != 0) return printf("not ok - %s\n", why.c_str()), 1;
  if (after != 1) return printf("not ok - no wait, yet it left CPU 1 (%d CPUs)\n", after), 1;
  printf("ok\n");
  return 0;
}
