// The floor of one userspace hop on this machine (issue 24, docs/BENCHMARKS.md):
// a 64-byte message ping-pongs between two threads through K relay threads,
// each blocked in poll(2) on two loopback TCP sockets and forwarding what it
// reads (read(2), write(2)): what a native hop of tapswitch does, without
// parsing or deciding. The round trip's median with K relays, minus the one
// with none, divided by 2K, is what one such hop costs here.
//
//   g++ -O2 -std=c++17 -pthread hop-floor.cc -o hop-floor && ./hop-floor [rounds]

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <vector>

static void Pair(int sv[2]) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(l, (sockaddr*)&a, sizeof a) != 0 || listen(l, 1) != 0 || getsockname(l, (sockaddr*)&a, &len) != 0) exit(2);
  sv[0] = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(sv[0], (sockaddr*)&a, sizeof a) != 0) exit(2);
  sv[1] = accept(l, nullptr, nullptr);
  close(l);
  int one = 1;
  for (int i = 0; i < 2; i++) setsockopt(sv[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static bool ReadFull(int fd, char* p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= size_t(r);
  }
  return true;
}

// Forward both ways between a and b until either closes; then close both, so the end passes on.
static void Relay(int a, int b) {
  char buf[4096];
  pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  for (bool on = true; on;) {
    if (poll(fds, 2, -1) < 0) break;
    for (int i = 0; i < 2 && on; i++) {
      if (fds[i].revents == 0) continue;
      ssize_t r = read(fds[i].fd, buf, sizeof buf);
      on = r > 0 && write(fds[1 - i].fd, buf, size_t(r)) == r;
    }
  }
  close(a);
  close(b);
}

static double Now() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

// Median round trip (µs) through k relays.
static double RoundTrip(int k, int rounds) {
  std::vector<std::thread> relays;
  int first[2];
  Pair(first);
  int left = first[0], right = first[1];
  for (int i = 0; i < k; i++) {
    int next[2];
    Pair(next);
    relays.emplace_back(Relay, right, next[0]);
    right = next[1];
  }
  std::thread echo([right] {
    char m[64];
    while (ReadFull(right, m, sizeof m))
      if (write(right, m, sizeof m) != (ssize_t)sizeof m) return;
  });
  std::vector<double> rtt;
  char m[64] = {};
  for (int i = 0; i < rounds; i++) {
    double t0 = Now();
    if (write(left, m, sizeof m) != (ssize_t)sizeof m || !ReadFull(left, m, sizeof m)) exit(3);
    rtt.push_back(Now() - t0);
    usleep(2000);  // idle between rounds, as a ping is: each hop wakes cold
  }
  close(left);
  echo.join();
  close(right);
  for (auto& t : relays) t.join();
  std::sort(rtt.begin(), rtt.end());
  return rtt[rtt.size() / 2];
}

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 400;
  const double base = RoundTrip(0, rounds);
  printf("relays\trtt_p50_us\tper_hop_us\n0\t%.1f\t-\n", base);
  for (int k = 1; k <= 3; k++) {
    const double r = RoundTrip(k, rounds);
    printf("%d\t%.1f\t%.1f\n", k, r, (r - base) / (2 * k));
    fflush(stdout);
  }
  return 0;
}
