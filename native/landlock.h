// Landlock (Documentation/userspace-api/landlock.rst), for the addon's ABI
// probe (process.cc) and the gateway's launcher (sandbox.cc): the syscalls and
// the access rights of each ABI, defined here so that building on an older
// <linux/landlock.h> (Debian 12's is ABI 2) still knows the rights a newer
// kernel handles. glibc has no wrappers, hence syscall(2); the numbers are
// the same on every architecture (new syscalls since 5.1 share one table).
//
// ABI history: 1 (5.13) the filesystem rights below TRUNCATE; 2 (5.19) REFER;
// 3 (6.2) TRUNCATE; 4 (6.7) TCP bind/connect (not used: slirp's NAT connects
// anywhere); 5 (6.10) IOCTL_DEV; 6 (6.12) scopes: signals and abstract Unix
// sockets outside the domain.
#pragma once

#include <errno.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#endif
#ifndef __NR_landlock_add_rule
#define __NR_landlock_add_rule 445
#endif
#ifndef __NR_landlock_restrict_self
#define __NR_landlock_restrict_self 446
#endif

namespace tapswitch {
namespace landlock {

constexpr uint32_t kCreateRulesetVersion = 1U << 0;
constexpr int kRulePathBeneath = 1;

constexpr uint64_t kExecute = 1ULL << 0;
constexpr uint64_t kWriteFile = 1ULL << 1;
constexpr uint64_t kReadFile = 1ULL << 2;
constexpr uint64_t kReadDir = 1ULL << 3;
constexpr uint64_t kRemoveDir = 1ULL << 4;
constexpr uint64_t kRemoveFile = 1ULL << 5;
constexpr uint64_t kMakeChar = 1ULL << 6;
constexpr uint64_t kMakeDir = 1ULL << 7;
constexpr uint64_t kMakeReg = 1ULL << 8;
constexpr uint64_t kMakeSock = 1ULL << 9;
constexpr uint64_t kMakeFifo = 1ULL << 10;
constexpr uint64_t kMakeBlock = 1ULL << 11;
constexpr uint64_t kMakeSym = 1ULL << 12;
constexpr uint64_t kRefer = 1ULL << 13;
constexpr uint64_t kTruncate = 1ULL << 14;
constexpr uint64_t kIoctlDev = 1ULL << 15;

constexpr uint64_t kScopeAbstractUnixSocket = 1ULL << 0;
constexpr uint64_t kScopeSignal = 1ULL << 1;

/** The rights a rule on a file (not a directory) may carry. */
constexpr uint64_t kFileRights = kExecute | kWriteFile | kReadFile | kTruncate | kIoctlDev;

// struct landlock_ruleset_attr as of ABI 6; an older kernel takes the
// prefix it knows (copy_struct_from_user), so a field it lacks stays 0.
struct RulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};

struct __attribute__((packed)) PathBeneathAttr {
  uint64_t allowed_access;
  int32_t parent_fd;
};

/** Every filesystem right the kernel of `abi` handles: the ruleset denies all of them but what a rule allows. */
inline uint64_t FsRights(int abi) {
  uint64_t r = (kMakeSym << 1) - 1;  // ABI 1: EXECUTE .. MAKE_SYM
  if (abi >= 2) r |= kRefer;
  if (abi >= 3) r |= kTruncate;
  if (abi >= 5) r |= kIoctlDev;
  return r;
}

/** The scopes of `abi` (6 and up): no signal to, and no abstract Unix socket of, a process outside the domain. */
inline uint64_t Scopes(int abi) { return abi >= 6 ? (kScopeAbstractUnixSocket | kScopeSignal) : 0; }

/** The kernel's Landlock ABI version (>= 1), or -errno: ENOSYS (a kernel without it), EOPNOTSUPP (built, not enabled at
 * boot). */
inline int Abi() {
  long v = syscall(__NR_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
  return v >= 0 ? static_cast<int>(v) : -errno;
}

inline int CreateRuleset(const RulesetAttr* attr, size_t size) {
  return static_cast<int>(syscall(__NR_landlock_create_ruleset, attr, size, 0));
}

inline int AddPathRule(int ruleset, const PathBeneathAttr* attr) {
  return static_cast<int>(syscall(__NR_landlock_add_rule, ruleset, kRulePathBeneath, attr, 0));
}

inline int RestrictSelf(int ruleset) { return static_cast<int>(syscall(__NR_landlock_restrict_self, ruleset, 0)); }

}  // namespace landlock
}  // namespace tapswitch
