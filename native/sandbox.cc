// tapswitch-sandbox: the launcher of a gateway's QEMU child (io/gateway.ts).
//
//   tapswitch-sandbox --parent PID --nofile N [--user UID:GID] [--landlock]
//                     [--read PATH]... [--exec PATH]... [--write PATH]...
//                     -- PROGRAM [ARG]...
//
// switchd spawns this instead of QEMU; it narrows what the process may do,
// in this order, then execs PROGRAM in the same process (same PID, so
// switchd's bookkeeping, its stop by PID and the peer checks of its
// listeners all see QEMU itself):
//
//  1. with --user (switchd is root): drop every capability from the bounding,
//     inheritable and ambient sets;
//  2. RLIMIT_NOFILE soft = hard = N: what a station can make slirp hold (one
//     fd per flow) is bounded here, by the kernel, whatever slirp does;
//  3. with --user: no supplementary groups, then the gid and uid (real,
//     effective, saved), checked; then, with or without --user, no
//     capability left (ambient, permitted, effective, inheritable);
//  4. no_new_privs: nothing it execs can gain privilege (and Landlock needs it);
//  5. PR_SET_PDEATHSIG SIGKILL, after the credential change (which would clear
//     it), then getppid() == PID: if switchd died before this point the
//     signal would never come, so we stop instead. No orphan, however switchd dies;
//     then a session of its own (setsid): no controlling terminal to type into;
//  6. with --landlock: a Landlock ruleset that handles every filesystem right
//     of the kernel's ABI and allows only the paths given (--read: read files
//     and list directories beneath; --exec: also execute; --write: also write
//     and truncate, for /dev/null), and on ABI 6 and up scopes signals and
//     abstract Unix sockets to the domain. Everything else (switchd's
//     configuration, its token files and TLS key, /proc/<switchd>, /home,
//     /etc at large) cannot be opened, whoever owns it. A path that does
//     not exist is skipped (a host without /lib64); any other failure stops
//     the start: switchd asked for Landlock because the kernel has it.
//     Landlock also forbids ptrace of any process outside the domain.
//  7. a seccomp filter: signals only to itself (kill, tgkill, rt_sigqueueinfo
//     and rt_tgsigqueueinfo whose target is its own PID; tkill and
//     pidfd_send_signal not at all; a file's owner, who gets its SIGIO or
//     F_SETSIG signal, only itself: fcntl F_SETOWN to its PID, no F_SETOWN_EX,
//     FIOSETOWN or SIOCSPGRP), no TIOCSTI or TIOCLINUX, no ptrace, no process_vm_readv/writev, no
//     pidfd_getfd, sockets of IPv4 and IPv6 only (no Unix socket, path or
//     abstract: switchd's QEMU listeners, the host's D-Bus; no vsock, no
//     netlink), no io_uring (whose requests pass no filter: it would make the
//     Unix socket socket(2) may not), and no other syscall ABI (x32, i386) to
//     slip past those numbers.
//     Landlock scopes signals only from ABI 6 (Linux 6.12): on Debian 12's
//     6.1, a child that runs as switchd's own user (switchd not root, as in
//     the shipped systemd unit and image) could otherwise SIGSTOP or SIGKILL
//     switchd, or kill(-1) every process of that user, once a station took
//     it over. QEMU signals only its own threads (tgkill with its own PID).
//     QEMU's own -sandbox filter stacks on this one.
//
// Errors go to stderr as "tapswitch-sandbox: <step>: <errno name> (<fix>)" and
// exit 126 (127 when PROGRAM cannot be executed), as env(1) does; switchd
// shows them as the child's last words.

#include "landlock.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace {

namespace ll = tapswitch::landlock;

constexpr int kExitSetup = 126;
constexpr int kExitExec = 127;

struct PathRule {
  std::string path;
  uint64_t access;
};

struct Options {
  pid_t parent = 0;
  rlim_t nofile = 0;
  bool drop_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
  bool landlock = false;
  std::vector<PathRule> rules;
  char** argv = nullptr;  // PROGRAM and its arguments
};

const char* ErrName(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* name = strerrorname_np(err)) return name;
#endif
  return strerror(err);
}

[[noreturn]] void Fail(const char* step, int err, const char* fix) {
  fprintf(stderr, "tapswitch-sandbox: %s: %s%s%s%s\n", step, ErrName(err), *fix != '\0' ? " (" : "", fix,
          *fix != '\0' ? ")" : "");
  _exit(kExitSetup);
}

[[noreturn]] void Usage(const char* what) {
  fprintf(stderr,
          "tapswitch-sandbox: %s\nusage: tapswitch-sandbox --parent PID --nofile N [--user UID:GID] [--landlock] "
          "[--read PATH]... [--exec PATH]... [--write PATH]... -- PROGRAM [ARG]...\n",
          what);
  _exit(kExitSetup);
}

bool ParseUnsigned(const char* s, unsigned long long max, unsigned long long* out) {
  if (*s < '0' || *s > '9') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v > max) return false;
  *out = v;
  return true;
}

Options Parse(int argc, char** argv) {
  constexpr uint64_t kRead = ll::kReadFile | ll::kReadDir;
  Options o;
  int i = 1;
  for (; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--") {
      i++;
      break;
    }
    if (a == "--landlock") {
      o.landlock = true;
      continue;
    }
    if (i + 1 >= argc) Usage(("missing value after " + a).c_str());
    const char* v = argv[++i];
    unsigned long long n = 0;
    if (a == "--parent") {
      if (!ParseUnsigned(v, 0x7fffffff, &n) || n == 0) Usage("--parent: expected a PID");
      o.parent = static_cast<pid_t>(n);
    } else if (a == "--nofile") {
      if (!ParseUnsigned(v, 1U << 30, &n) || n < 16) Usage("--nofile: expected a number from 16");
      o.nofile = static_cast<rlim_t>(n);
    } else if (a == "--user") {
      std::string s = v;
      size_t colon = s.find(':');
      unsigned long long u = 0, g = 0;
      if (colon == std::string::npos || !ParseUnsigned(s.substr(0, colon).c_str(), 0xfffffffe, &u) ||
          !ParseUnsigned(s.substr(colon + 1).c_str(), 0xfffffffe, &g))
        Usage("--user: expected UID:GID");
      o.drop_user = true;
      o.uid = static_cast<uid_t>(u);
      o.gid = static_cast<gid_t>(g);
    } else if (a == "--read") {
      o.rules.push_back({v, kRead});
    } else if (a == "--exec") {
      o.rules.push_back({v, kRead | ll::kExecute});
    } else if (a == "--write") {
      o.rules.push_back({v, kRead | ll::kWriteFile | ll::kTruncate});
    } else {
      Usage(("unknown option " + a).c_str());
    }
  }
  if (i >= argc) Usage("no PROGRAM after --");
  if (o.parent == 0 || o.nofile == 0) Usage("--parent and --nofile are required");
  if (argv[i][0] != '/') Usage("PROGRAM must be an absolute path");
  o.argv = argv + i;
  return o;
}

// Step 1: no capability survives into QEMU, even were it to exec something with file capabilities.
void DropCapabilities() {
  for (int cap = 0; cap <= 63; cap++) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) break;  // past the kernel's last capability
      Fail("prctl(PR_CAPBSET_DROP)", errno, "needs CAP_SETPCAP: --user is for a launcher started as root");
    }
  }
  __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &hdr, data) != 0) Fail("capget", errno, "");
  data[0].inheritable = data[1].inheritable = 0;
  if (syscall(SYS_capset, &hdr, data) != 0) Fail("capset", errno, "");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    Fail("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", errno, "");
}

// Step 3b, always: no capability reaches QEMU from a switchd that is not root either. A switchd
// given CAP_NET_ADMIN for --tap (deploy/systemd/switchd-tap.conf: ambient and bounding) would
// otherwise pass it on, ambient capabilities surviving execve: a station that took the child over
// could reconfigure the host's interfaces through an AF_INET socket's ioctls. Dropping needs no privilege.
void ClearCapabilities() {
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    Fail("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", errno, "");
  __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capset, &hdr, data) != 0) Fail("capset", errno, "");
}

void DropUser(uid_t uid, gid_t gid) {
  if (setgroups(0, nullptr) != 0) Fail("setgroups", errno, "needs root: --user is for a launcher started as root");
  if (setresgid(gid, gid, gid) != 0) Fail("setresgid", errno, "");
  if (setresuid(uid, uid, uid) != 0) Fail("setresuid", errno, "");
  uid_t r, e, s;
  gid_t gr, ge, gs;
  if (getresuid(&r, &e, &s) != 0 || r != uid || e != uid || s != uid || getresgid(&gr, &ge, &gs) != 0 || gr != gid ||
      ge != gid || gs != gid)
    Fail("setresuid", EPERM, "the ids did not change");
}

// Step 6. Each path becomes one rule on the inode it names now (a symlink is followed).
void ApplyLandlock(const std::vector<PathRule>& rules) {
  int abi = ll::Abi();
  if (abi < 1) Fail("landlock_create_ruleset", -abi, "switchd found Landlock, this process does not: restart switchd");
  const uint64_t fs = ll::FsRights(abi);
  ll::RulesetAttr attr = {fs, 0, ll::Scopes(abi)};
  int ruleset = ll::CreateRuleset(&attr, sizeof attr);
  if (ruleset < 0) Fail("landlock_create_ruleset", errno, "");
  for (const PathRule& r : rules) {
    int fd = open(r.path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      Fail(("open " + r.path).c_str(), errno, "");
    }
    struct stat st;
    if (fstat(fd, &st) != 0) Fail(("fstat " + r.path).c_str(), errno, "");
    ll::PathBeneathAttr pb = {r.access & fs, fd};
    if (!S_ISDIR(st.st_mode)) pb.allowed_access &= ll::kFileRights;
    if (ll::AddPathRule(ruleset, &pb) != 0) Fail(("landlock_add_rule " + r.path).c_str(), errno, "");
    close(fd);
  }
  if (ll::RestrictSelf(ruleset) != 0) Fail("landlock_restrict_self", errno, "");
  close(ruleset);
}

// Step 7. The architecture this launcher (and so QEMU, which it execs) was built for.
#if defined(__x86_64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#endif

void ApplySeccomp() {
#if defined(__x86_64__) || defined(__aarch64__)
  const uint32_t self = static_cast<uint32_t>(getpid());
  std::vector<sock_filter> f;
  auto stmt = [&f](uint16_t code, uint32_t k) { f.push_back(BPF_STMT(code, k)); };
  auto jump = [&f](uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) { f.push_back(BPF_JUMP(code, k, jt, jf)); };
  constexpr uint32_t kAllow = SECCOMP_RET_ALLOW;
  constexpr uint32_t kPerm = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
  constexpr uint32_t kNosys = SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA);
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch));
  jump(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0);
  stmt(BPF_RET | BPF_K, kNosys);  // another ABI (i386 through int 0x80)
  stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr));
#if defined(__x86_64__)
  jump(BPF_JMP | BPF_JGE | BPF_K, 0x40000000U, 0, 1);  // x32: the same calls under other numbers
  stmt(BPF_RET | BPF_K, kNosys);
#endif
  // Then one block per call: `JEQ nr` skips the block unless it is that call; each block ends in a return.
  auto argIs = [&](uint32_t nr, uint32_t value, uint32_t yes, uint32_t no) {
    jump(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 4);
    stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args));  // args[0]'s low 32 bits (little-endian here)
    jump(BPF_JMP | BPF_JEQ | BPF_K, value, 0, 1);
    stmt(BPF_RET | BPF_K, yes);
    stmt(BPF_RET | BPF_K, no);
  };
  auto deny = [&](uint32_t nr) {
    jump(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1);
    stmt(BPF_RET | BPF_K, kPerm);
  };
  // args[i]'s low 32 bits (little-endian here): what every check below compares.
  auto loadArg = [&](uint32_t i) { stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args) + 8 * i); };
  // Signals: to its own PID only (tgkill and rt_tgsigqueueinfo name the thread group first).
  for (uint32_t nr : {__NR_kill, __NR_tgkill, __NR_rt_sigqueueinfo, __NR_rt_tgsigqueueinfo})
    argIs(nr, self, kAllow, kPerm);
  for (uint32_t nr : {__NR_tkill, __NR_ptrace, __NR_process_vm_readv, __NR_process_vm_writev}) deny(nr);
#ifdef __NR_pidfd_send_signal
  deny(__NR_pidfd_send_signal);
#endif
#ifdef __NR_pidfd_getfd
  deny(__NR_pidfd_getfd);  // another process's fds: the same ptrace check as process_vm_readv
#endif
  // A signal the kernel sends for a file: SIGIO/SIGURG (or any signal, F_SETSIG) to the file's owner
  // when it becomes ready. The owner is set by fcntl F_SETOWN (a pid, or -pgid), F_SETOWN_EX (through
  // a pointer) and the socket ioctls FIOSETOWN and SIOCSPGRP (through a pointer): its own PID only, or
  // not at all. Landlock scopes these from 6.12, as kill(2).
  jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_fcntl, 0, 9);
  loadArg(1);
  jump(BPF_JMP | BPF_JEQ | BPF_K, F_SETOWN_EX, 0, 1);
  stmt(BPF_RET | BPF_K, kPerm);
  jump(BPF_JMP | BPF_JEQ | BPF_K, F_SETOWN, 1, 0);
  stmt(BPF_RET | BPF_K, kAllow);
  loadArg(2);
  jump(BPF_JMP | BPF_JEQ | BPF_K, self, 0, 1);
  stmt(BPF_RET | BPF_K, kAllow);
  stmt(BPF_RET | BPF_K, kPerm);
  // With them, TIOCSTI (type into a terminal, as its user) and TIOCLINUX: the session the launcher
  // left has none, and this holds even for a terminal fd the child was given.
  jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 7);
  loadArg(1);
  jump(BPF_JMP | BPF_JEQ | BPF_K, FIOSETOWN, 4, 0);
  jump(BPF_JMP | BPF_JEQ | BPF_K, SIOCSPGRP, 3, 0);
  jump(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 2, 0);
  jump(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 1, 0);
  stmt(BPF_RET | BPF_K, kAllow);
  stmt(BPF_RET | BPF_K, kPerm);
  // io_uring does in the kernel what its requests say, past this filter: IORING_OP_SOCKET makes the Unix
  // socket socket(2) may not (seen: connected to a listener of the host). As if the kernel had none
  // (ENOSYS): QEMU then watches its fds with ppoll, as it does on such a kernel.
  for (uint32_t nr : {__NR_io_uring_setup, __NR_io_uring_enter, __NR_io_uring_register}) {
    jump(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1);
    stmt(BPF_RET | BPF_K, kNosys);
  }
  // Sockets: IPv4 and IPv6 only, what slirp opens (an allowlist: no Unix socket to reach switchd's QEMU
  // listeners or the host's abstract sockets, no vsock to a hypervisor, no netlink). QEMU has its two
  // socketpairs already and makes no other.
  jump(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 5);
  loadArg(0);
  jump(BPF_JMP | BPF_JEQ | BPF_K, AF_INET, 2, 0);
  jump(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, 1, 0);
  stmt(BPF_RET | BPF_K, kPerm);
  stmt(BPF_RET | BPF_K, kAllow);
  deny(__NR_socketpair);
  stmt(BPF_RET | BPF_K, kAllow);
  sock_fprog prog = {static_cast<unsigned short>(f.size()), f.data()};
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
    Fail("prctl(PR_SET_SECCOMP)", errno, "a kernel without seccomp filters (CONFIG_SECCOMP_FILTER)");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  Options o = Parse(argc, argv);
  if (o.drop_user) DropCapabilities();
  rlimit lim = {o.nofile, o.nofile};
  if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
    Fail("setrlimit(RLIMIT_NOFILE)", errno, "above the hard limit: switchd lowers the limit it asks for to its own");
  if (o.drop_user) DropUser(o.uid, o.gid);
  ClearCapabilities();
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) Fail("prctl(PR_SET_NO_NEW_PRIVS)", errno, "");
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) Fail("prctl(PR_SET_PDEATHSIG)", errno, "");
  if (getppid() != o.parent) {
    fprintf(stderr, "tapswitch-sandbox: switchd (pid %d) is gone: not starting\n", static_cast<int>(o.parent));
    _exit(kExitSetup);
  }
  // A session of its own, so no controlling terminal: switchd started from a shell shares its terminal
  // with the child, which could open /dev/tty (without Landlock) and type into it (TIOCSTI) as its user.
  if (setsid() < 0) Fail("setsid", errno, "switchd spawns the launcher as a process-group leader: it must not");
  if (o.landlock) ApplyLandlock(o.rules);
  ApplySeccomp();
  execv(o.argv[0], o.argv);
  fprintf(stderr, "tapswitch-sandbox: exec %s: %s\n", o.argv[0], ErrName(errno));
  return kExitExec;
}
