// wslink::Link falls back from a refused UDP run without losing a frame (test/unit/ws-link-native.test.ts
// builds and runs it). ws_link_runs_refused_test.cc's timerfd refuses every write, so it can only count
// errors: a link that counted a refused run's frames as errors and never wrote them passed it. Here the
// "TAP" is a SOCK_SEQPACKET pair (one write, one record, as on a TAP) and this file's writev(2), which
// the link's objects bind to, refuses a run's shape (more than two iovecs: a vnet header, the run's
// head, its payloads) with EINVAL as a kernel before 6.2 does, and passes every other write on. Every
// frame of two messages must reach the far end exactly once, in order, each written alone.
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>
#include "../native/ws_link.h"
#include "run_records.h"
using namespace tapswitch;
using namespace runtest;
static void Notify(void*) {}

static int g_tap = -1;     // the link's end of the TAP pair
static int g_refused = 0;  // run writes refused

// The link's writev(2): a run to the TAP is refused as by a kernel without USO; anything else is written.
extern "C" ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
  if (fd == g_tap && iovcnt > 2) {
    g_refused++;
    errno = EINVAL;
    return -1;
  }
  return syscall(SYS_writev, fd, iov, iovcnt);
}

// Every record waiting at the TAP's far end: its payload's mark, or a count of wrong lengths.
static void Receive(int fd, std::vector<int>& marks, int& wrong) {
  uint8_t rec[2048];
  ssize_t n;
  while ((n = recv(fd, rec, sizeof rec, 0)) > 0) {
    if (static_cast<size_t>(n) != kVnetHdrLen + kFrame) {
      wrong++;
      continue;
    }
    marks.push_back(rec[kMarkAt]);
  }
}

int main() {
  int s[2], t[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s) != 0) return printf("not ok - socketpair\n"), 2;
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, t) != 0) return printf("not ok - socketpair\n"), 2;
  g_tap = t[0];
  if (!MakesOneRun()) return printf("not ok - the test's 8 records do not make one run (udp_run.h changed?)\n"), 2;
  wslink::Options o;
  o.sock_fd = s[0];
  o.tap_fd = t[0];
  o.vnet_hdr = true;
  o.zero_mask = true;
  auto* l = new wslink::Link(o);
  l->Run(Notify, nullptr);
  l->Start(true, 0, true, 0);  // offload records, runs on
  std::vector<int> marks;
  int wrong = 0;
  for (int round = 0; round < 2; round++) {
    const std::vector<uint8_t> m = Message(static_cast<uint8_t>(round * 8));
    if (send(s[1], m.data(), m.size(), 0) != static_cast<ssize_t>(m.size())) return printf("not ok - send\n"), 2;
    // Every wait is bounded: 5 s a round, then what arrived is judged.
    for (int i = 0; i < 500 && marks.size() < static_cast<size_t>(8 * (round + 1)); i++) {
      pollfd p = {t[1], POLLIN, 0};
      if (poll(&p, 1, 10) > 0) Receive(t[1], marks, wrong);
    }
  }
  // A moment more: a frame written twice would arrive now.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Receive(t[1], marks, wrong);
  int notices = 0;
  std::vector<uint8_t>& ev = l->TakeEvents();
  for (size_t at = 0; at + 7 <= ev.size(); at += 7 + ReadBE32(&ev[at + 3]))
    if (ev[at] == wslink::E_NOTICE && ((ev[at + 1] << 8) | ev[at + 2]) == wslink::N_UDP_RUNS_REFUSED) notices++;
  double a[wslink::L_COUNT], st[STAT_COUNT];
  l->Terminate();
  l->Join();
  l->Stats(a, st);
  delete l;
  close(s[1]);
  close(t[1]);
  close(t[0]);  // the link's TAP end is the caller's (Options owns only sock_fd)
  std::string got;
  for (int m : marks) got += std::to_string(m) + " ";
  bool in_order = marks.size() == 16;
  for (size_t i = 0; in_order && i < 16; i++) in_order = marks[i] == static_cast<int>(i);
  if (!in_order || wrong != 0) {
    printf("not ok - frames at the far end: %s(want 0 to 15, each once, in order; %d of a wrong length)\n", got.c_str(),
           wrong);
    return 1;
  }
  if (g_refused != 1 || a[wslink::L_UDP_RUNS_REFUSED] != 1 || notices != 1) {
    printf("not ok - %d run writes refused, %g counted, %d notices (want 1, 1 and 1)\n", g_refused,
           a[wslink::L_UDP_RUNS_REFUSED], notices);
    return 1;
  }
  if (st[TX_FRAMES] != 16 || st[TX_ERRORS] != 0 || st[TX_DROPPED] != 0 || a[wslink::L_DOWN_FRAMES] != 16 ||
      a[wslink::L_DOWN_RUN_FRAMES] != 0) {
    printf("not ok - %g TAP frames, %g errors, %g dropped, %g down frames, %g run frames (want 16, 0, 0, 16, 0)\n",
           st[TX_FRAMES], st[TX_ERRORS], st[TX_DROPPED], a[wslink::L_DOWN_FRAMES], a[wslink::L_DOWN_RUN_FRAMES]);
    return 1;
  }
  printf("ok\n");
  return 0;
}
