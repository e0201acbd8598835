// Who is on the other end of a local TCP connection (contract in native/index.d.ts):
// lookupPeerSocket() and findSocketFd(), for io/child-peers.ts, which refuses
// the connections of a gateway's QEMU child on switchd's own listeners
// whatever address it used.
//
// - lookupPeerSocket asks the kernel for the socket at the OTHER end of a
//   connection: NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY with an exact 4-tuple
//   and no NLM_F_DUMP (inet_diag_find_one_icsk: one hash lookup, not a walk
//   of every socket; what `ss` does for one socket). A peer on this host, in
//   this network namespace, has that socket; a peer elsewhere has none
//   (ENOENT). No privilege is needed: the inode and the owner's uid are
//   shown to everyone, as in /proc/net/tcp. A listener that happens to own
//   the peer's address and port (inet_lookup falls back to listeners) is
//   not the peer: only a socket connected to exactly us counts.
// - findSocketFd looks through /proc/<pid>/fd for `socket:[inode]`, after
//   trying `hint` (the fd of the last hit: a process that keeps reconnecting
//   reuses its lowest free fd). Reading another process's fds needs its user
//   or CAP_SYS_PTRACE (ptrace_may_access, read mode).
// Both are synchronous: a netlink request is answered inside sendto(2), and
// the fd scan is bounded by the process's RLIMIT_NOFILE (the launcher sets it).

#include <napi.h>

#include "sys_error.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace tapswitch {
void InitPeer(Napi::Env env, Napi::Object exports);
}

namespace {

using namespace tapswitch;

const char* NetlinkHint(int err) {
  switch (err) {
    case EAFNOSUPPORT:
    case EPERM:
    case EACCES: return "AF_NETLINK is forbidden here (systemd: add AF_NETLINK to RestrictAddressFamilies=)";
    case EPROTONOSUPPORT:
    case ENOENT: return "the kernel has no inet_diag (CONFIG_INET_DIAG, module tcp_diag)";
    default: return "";
  }
}

struct Address {
  int family = 0;
  uint32_t words[4] = {};  // network order, as inet_diag_sockid wants it
};

// IPv4, IPv6, or IPv4-mapped IPv6 (Node's remoteAddress on a dual-stack listener), which is looked up as IPv4.
bool ParseAddress(const std::string& text, Address* a) {
  in6_addr v6;
  if (inet_pton(AF_INET, text.c_str(), &a->words[0]) == 1) {
    a->family = AF_INET;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    a->family = AF_INET;
    memcpy(&a->words[0], &v6.s6_addr[12], 4);
  } else {
    a->family = AF_INET6;
    memcpy(a->words, &v6, 16);
  }
  return true;
}

Napi::Value Throw(Napi::Env env, int err, const char* syscall) {
  ThrowSystemError(env, err, syscall, "NETLINK_SOCK_DIAG", nullptr, NetlinkHint(err));
  return env.Undefined();
}

// lookupPeerSocket(peerAddress, peerPort, localAddress, localPort) -> { inode, uid } | null
Napi::Value LookupPeerSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsString() || !info[3].IsNumber()) {
    Napi::TypeError::New(env, "lookupPeerSocket(peerAddress, peerPort, localAddress, localPort)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Address peer, local;
  uint32_t peer_port = info[1].As<Napi::Number>().Uint32Value();
  uint32_t local_port = info[3].As<Napi::Number>().Uint32Value();
  if (!ParseAddress(info[0].As<Napi::String>().Utf8Value(), &peer) ||
      !ParseAddress(info[2].As<Napi::String>().Utf8Value(), &local) || peer.family != local.family ||
      peer_port > 65535 || local_port > 65535) {
    Napi::TypeError::New(env, "lookupPeerSocket: two IP addresses of one family and two ports")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }

  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg = {};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;  // no NLM_F_DUMP: the exact lookup
  msg.nlh.nlmsg_seq = 1;
  msg.req.sdiag_family = static_cast<uint8_t>(peer.family);
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = ~0U;
  // The socket we want has the peer's address as its source and ours as its destination.
  msg.req.id.idiag_sport = htons(static_cast<uint16_t>(peer_port));
  msg.req.id.idiag_dport = htons(static_cast<uint16_t>(local_port));
  memcpy(msg.req.id.idiag_src, peer.words, sizeof peer.words);
  memcpy(msg.req.id.idiag_dst, local.words, sizeof local.words);
  msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return Throw(env, errno, "socket(AF_NETLINK)");
  sockaddr_nl kernel = {};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
    int err = errno;
    close(fd);
    return Throw(env, err, "sendto(SOCK_DIAG_BY_FAMILY)");
  }
  alignas(nlmsghdr) char buf[8192];
  ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);  // answered within sendto
  int err = errno;
  close(fd);
  if (n < 0) return Throw(env, err, "recv(SOCK_DIAG_BY_FAMILY)");

  int len = static_cast<int>(n);
  for (nlmsghdr* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
    if (h->nlmsg_type == NLMSG_ERROR) {
      const nlmsgerr* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof *e)) break;
      if (e->error == -ENOENT || e->error == 0) return env.Null();
      return Throw(env, -e->error, "SOCK_DIAG_BY_FAMILY");
    }
    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) continue;
    const inet_diag_msg* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
    // Only a socket connected to exactly our address and port is the peer (not a listener of its address).
    if (m->idiag_state == TCP_LISTEN || m->id.idiag_dport != msg.req.id.idiag_dport ||
        memcmp(m->id.idiag_dst, local.words, peer.family == AF_INET ? 4 : 16) != 0)
      return env.Null();
    Napi::Object out = Napi::Object::New(env);
    out.Set("inode", Napi::Number::New(env, m->idiag_inode));
    out.Set("uid", Napi::Number::New(env, m->idiag_uid));
    return out;
  }
  return Throw(env, EBADMSG, "recv(SOCK_DIAG_BY_FAMILY)");
}

bool LinkIs(int dirfd, const char* name, const char* want, size_t want_len) {
  char link[64];
  ssize_t n = readlinkat(dirfd, name, link, sizeof link);
  return n == static_cast<ssize_t>(want_len) && memcmp(link, want, want_len) == 0;
}

// findSocketFd(pid, inode, hint) -> the fd of `pid` holding socket `inode`, or -1 (none, or the process is gone).
Napi::Value FindSocketFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "findSocketFd(pid, inode, hint)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int pid = info[0].As<Napi::Number>().Int32Value();
  double inode = info[1].As<Napi::Number>().DoubleValue();
  int hint = info[2].As<Napi::Number>().Int32Value();
  if (pid <= 0 || !(inode >= 0 && inode <= 4294967295.0)) {
    Napi::RangeError::New(env, "findSocketFd: a PID and a 32-bit inode").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  char want[32];
  size_t want_len = static_cast<size_t>(snprintf(want, sizeof want, "socket:[%u]", static_cast<unsigned>(inode)));
  char path[32];
  snprintf(path, sizeof path, "/proc/%d/fd", pid);
  int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) {
    if (errno == ENOENT || errno == ESRCH) return Napi::Number::New(env, -1);
    ThrowSystemError(env, errno, "open", path, path, "reading another process's fds needs its user, or CAP_SYS_PTRACE");
    return env.Undefined();
  }
  int found = -1;
  char name[16];
  if (hint >= 0) {
    snprintf(name, sizeof name, "%d", hint);
    if (LinkIs(dirfd, name, want, want_len)) found = hint;
  }
  DIR* dir = found < 0 ? fdopendir(dirfd) : nullptr;
  if (found < 0 && dir == nullptr) {
    int err = errno;
    close(dirfd);
    ThrowSystemError(env, err, "fdopendir", path, path, "");
    return env.Undefined();
  }
  if (dir != nullptr) {
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      if (LinkIs(dirfd, e->d_name, want, want_len)) {
        found = atoi(e->d_name);
        break;
      }
    }
    closedir(dir);  // closes dirfd
  } else {
    close(dirfd);
  }
  return Napi::Number::New(env, found);
}

}  // namespace

namespace tapswitch {

void InitPeer(Napi::Env env, Napi::Object exports) {
  exports.Set("lookupPeerSocket", Napi::Function::New(env, LookupPeerSocket, "lookupPeerSocket"));
  exports.Set("findSocketFd", Napi::Function::New(env, FindSocketFd, "findSocketFd"));
}

}  // namespace tapswitch
