// wslink::Link when the kernel refuses a UDP run (test/unit/ws-link-native.test.ts builds and runs
// it). A kernel before 6.2 has no USO and answers a GSO_UDP_L4 write with EINVAL; here the "TAP" is a
// timerfd, which refuses every write(2) with EINVAL. The link must count the refusal once, tell JS
// once (E_NOTICE N_UDP_RUNS_REFUSED, which the agent logs), write the run's frames alone (each
// refused again, counted as a TAP write error: none vanishes uncounted), and never try a run again.
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>
#include "../native/ws_link.h"
#include "run_records.h"
using namespace tapswitch;
using namespace runtest;
static void Notify(void*) {}

int main() {
  int s[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s) != 0) return printf("not ok - socketpair\n"), 2;
  const int tap = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);  // never readable, every write EINVAL
  if (tap < 0) return printf("not ok - timerfd_create\n"), 2;
  if (!MakesOneRun()) return printf("not ok - the test's 8 records do not make one run (udp_run.h changed?)\n"), 2;
  wslink::Options o;
  o.sock_fd = s[0];
  o.tap_fd = tap;
  o.vnet_hdr = true;
  o.zero_mask = true;
  auto* l = new wslink::Link(o);
  l->Run(Notify, nullptr);
  l->Start(true, 0, true, 0);  // offload records, runs on
  double a[wslink::L_COUNT], t[STAT_COUNT];
  // Two messages of 8: the first's run is refused and its frames go alone; the second's are never joined.
  for (int round = 1; round <= 2; round++) {
    const std::vector<uint8_t> m = Message(static_cast<uint8_t>(round * 8));
    if (send(s[1], m.data(), m.size(), 0) != static_cast<ssize_t>(m.size())) return printf("not ok - send\n"), 2;
    for (int i = 0; i < 500; i++) {
      l->Stats(a, t);
      if (t[TX_ERRORS] >= 8 * round) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  int notices = 0, ends = 0;
  std::vector<uint8_t>& ev = l->TakeEvents();
  for (size_t at = 0; at + 7 <= ev.size(); at += 7 + ReadBE32(&ev[at + 3])) {
    if (ev[at] == wslink::E_NOTICE && ((ev[at + 1] << 8) | ev[at + 2]) == wslink::N_UDP_RUNS_REFUSED) notices++;
    if (ev[at] == wslink::E_END) ends++;
  }
  l->Terminate();
  l->Join();
  delete l;
  close(s[1]);
  close(tap);
  if (a[wslink::L_UDP_RUNS_REFUSED] != 1 || notices != 1) {
    printf("not ok - %g refusals counted, %d notices (want 1 and 1)\n", a[wslink::L_UDP_RUNS_REFUSED], notices);
    return 1;
  }
  if (t[TX_ERRORS] != 16 || a[wslink::L_DOWN_RUN_FRAMES] != 0 || a[wslink::L_RX_MESSAGES] != 2) {
    printf("not ok - %g write errors (want 16: each frame written alone), %g run frames, %g messages\n", t[TX_ERRORS],
           a[wslink::L_DOWN_RUN_FRAMES], a[wslink::L_RX_MESSAGES]);
    return 1;
  }
  if (ends != 0) return printf("not ok - the link ended\n"), 1;
  printf("ok\n");
  return 0;
}
