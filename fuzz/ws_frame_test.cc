// The deterministic test of the native WebSocket reader and sender
// (native/ws_frame.cc, native/ws_output.cc): every case RFC 6455 names a
// failure for, the splits TCP may make, and the bytes the writer produces
// against ws's own (test/unit/ws-native.test.ts builds this and
// ws_output_test.cc with ASan and UBSan, passes it the frames ws's Sender
// wrote, and runs it). This file: main and the reader's cases.
//
//   ws_frame_test <expected-frames-file>
//
// Prints "ok - <case>" or "not ok - <case>: <why>" per case (the mocha test
// asserts each by name) and exits 1 if any failed.
#include <fstream>
#include <sstream>

#include "ws_test.h"

namespace wstest {

Bytes Hex(const std::string& h) {
  Bytes out;
  if (h == "-") return out;
  for (size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<uint8_t>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

std::vector<Expected> LoadExpected(const char* path) {
  std::vector<Expected> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream s(line);
    Expected e;
    std::string a, b, c, d;
    s >> e.kind >> e.name;
    if (e.kind == "frame") {
      s >> e.opcode >> e.fin >> a >> b >> c;
      e.mask = Hex(a);
      e.payload = Hex(b);
      e.bytes = Hex(c);
    } else if (e.kind == "close") {
      s >> e.code >> a >> b;
      e.reason = Hex(a);
      e.bytes = Hex(b);
    } else {
      continue;
    }
    out.push_back(e);
  }
  return out;
}

void ReaderSplitCases() {
  // Several messages of every kind and length class, masked as a client's (to a server) and not (to a client).
  auto stream = [](const uint8_t* m) {
    return Cat({Frame(kText, Str("hello"), m), Frame(kBinary, Fill(300), m), Frame(kPing, Str("p"), m),
                Frame(kText, Str("frag"), m, false), Frame(kPong, Bytes(), m), Frame(kContinuation, Str("ment"), m),
                Frame(kBinary, Bytes(), m), Frame(kClose, Bytes{0x03, 0xe8, 'o', 'k'}, m)});
  };
  const std::vector<std::pair<uint8_t, Bytes>> want = {{kText, Str("hello")},
                                                       {kBinary, Fill(300)},
                                                       {kPing, Str("p")},
                                                       {kPong, Bytes()},
                                                       {kText, Str("fragment")},
                                                       {kBinary, Bytes()},
                                                       {kClose, Bytes{0x03, 0xe8, 'o', 'k'}}};

  Case("frames split at every byte boundary of a stream of several messages (server role, masked)", [&] {
    const Bytes s = stream(kMask);
    for (size_t k = 0; k <= s.size(); k++) {
      Reader r(Role::kServer, 1 << 16);
      Got g;
      CHECK(r.Feed(s.data(), k));
      CHECK(Drain(&r, &g));
      CHECK(r.Feed(s.data() + k, s.size() - k));
      CHECK(Drain(&r, &g));
      CHECK(g.msgs == want && g.code == 0);
      CHECK(r.buffered() == 0);
    }
  });
  Case("frames split at every byte boundary of a stream of several messages (client role, unmasked)", [&] {
    const Bytes s = stream(nullptr);
    for (size_t k = 0; k <= s.size(); k++) {
      Reader r(Role::kClient, 1 << 16);
      Got g;
      CHECK(r.Feed(s.data(), k));
      CHECK(Drain(&r, &g));
      CHECK(r.Feed(s.data() + k, s.size() - k));
      CHECK(Drain(&r, &g));
      CHECK(g.msgs == want && g.code == 0);
    }
  });
  Case("one byte per read hands out the same messages", [&] {
    Reader r(Role::kServer, 1 << 16);
    const Got g = OneByteAtATime(&r, stream(kMask));
    CHECK(g.msgs == want && g.code == 0);
  });
  Case("7-bit, 16-bit and 64-bit lengths at their edges", [&] {
    for (size_t n : {size_t(0), size_t(125), size_t(126), size_t(65535), size_t(65536), size_t(70000)}) {
      const Bytes s = Frame(kBinary, Fill(n), kMask);
      CHECK(s.size() == n + 6 + (n > 65535 ? 8 : n > 125 ? 2 : 0));
      Reader r(Role::kServer, 1 << 20);
      Got g;
      // Split inside the header at every point, then the rest in reads of at most ReadPtr's room.
      for (size_t k = 0; k <= 14 && k <= s.size(); k++) {
        Reader rk(Role::kServer, 1 << 20);
        Got gk;
        CHECK(rk.Feed(s.data(), k));
        CHECK(Drain(&rk, &gk));
        for (size_t off = k; off < s.size();) {
          size_t room = 0;
          uint8_t* at = rk.ReadPtr(&room);
          CHECK(at != nullptr && room > 0);
          if (at == nullptr || room == 0) break;
          const size_t c = std::min(room, s.size() - off);
          memcpy(at, s.data() + off, c);
          rk.Commit(c);
          off += c;
          CHECK(Drain(&rk, &gk));
        }
        CHECK(gk.msgs.size() == 1 && gk.msgs[0].first == kBinary && gk.msgs[0].second == Fill(n));
      }
    }
  });
}

void ReaderBoundCases() {
  Case("a zero mask is a mask: the payload is taken as it is", [&] {
    const Got g = ReadAll(Role::kServer, 1000, Frame(kText, Str("as is"), kZeroMask));
    CHECK(g.code == 0 && g.msgs.size() == 1 && g.msgs[0].second == Str("as is"));
    // The zero mask's four bytes are on the wire (a mask bit and 0000), as ws writes them.
    const Bytes f = Frame(kText, Str("as is"), kZeroMask);
    CHECK(f.size() == 2 + 4 + 5 && (f[1] & 0x80) != 0);
  });
  auto interleaved = [&](uint8_t op) {
    const Bytes s = Cat({Frame(op, Str("one-"), kMask, false), Frame(kPing, Str("a"), kMask),
                         Frame(kContinuation, Str("two-"), kMask, false), Frame(kPong, Str("b"), kMask),
                         Frame(kClose, Bytes{0x03, 0xe9}, kMask), Frame(kContinuation, Str("three"), kMask)});
    for (size_t k = 0; k <= s.size(); k++) {
      Reader r(Role::kServer, 100);
      Got g;
      CHECK(r.Feed(s.data(), k) && Drain(&r, &g));
      CHECK(r.Feed(s.data() + k, s.size() - k) && Drain(&r, &g));
      const std::vector<std::pair<uint8_t, Bytes>> w = {
          {kPing, Str("a")}, {kPong, Str("b")}, {kClose, Bytes{0x03, 0xe9}}, {op, Str("one-two-three")}};
      CHECK(g.msgs == w && g.code == 0);
    }
  };
  Case("pings, pongs and a close between the fragments of a text message", [&] { interleaved(kText); });
  Case("pings, pongs and a close between the fragments of a binary message", [&] { interleaved(kBinary); });
  Case("close mid-batch: a close frame right after half a batch's bytes is part of the batch", [&] {
    Bytes batch;
    for (int i = 0; i < 3; i++) batch = Cat({batch, Bytes{0, 0, 0, 60}, Fill(60)});
    const Bytes whole = Frame(kBinary, batch, kMask);
    const Bytes half(whole.begin(), whole.begin() + whole.size() / 2);
    const Bytes close = Frame(kClose, Bytes{0x03, 0xe8}, kMask);
    Reader r(Role::kServer, 1 << 16);
    Got g;
    CHECK(r.Feed(half.data(), half.size()) && r.Feed(close.data(), close.size()));
    CHECK(Drain(&r, &g));
    // Nothing handed out: neither half a batch nor a close (its bytes are the batch's).
    CHECK(g.msgs.empty() && r.buffered() == half.size() + close.size());
    // A batch whole, then the close: both, in order.
    const Got g2 = ReadAll(Role::kServer, 1 << 16, Cat({whole, close}));
    CHECK(g2.msgs.size() == 2 && g2.msgs[0].second == batch && g2.msgs[1].first == kClose);
  });
  Case("a close frame: empty or a valid code and reason is a message", [&] {
    CHECK(ReadAll(Role::kServer, 10, Frame(kClose, Bytes(), kMask)).msgs.size() == 1);
    CHECK(ReadAll(Role::kServer, 10, Frame(kClose, Bytes{0x0f, 0xa0, 'x'}, kMask)).msgs.size() == 1);  // 4000
  });
  Case("attack: the registered close codes ws takes (1012-1014) are a message; 1004-1006 and 1015 fail", [&] {
    // Before the fix, 1012 (service restart, as proxies send it) failed the connection with 1002.
    for (uint16_t c : {1000, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4999}) {
      const Bytes f = Frame(kClose, Bytes{static_cast<uint8_t>(c >> 8), static_cast<uint8_t>(c)}, kMask);
      CHECK(ReadAll(Role::kServer, 10, f).msgs.size() == 1);
    }
    for (uint16_t c : {999, 1004, 1005, 1006, 1015, 1016, 2999, 5000}) {
      const Bytes f = Frame(kClose, Bytes{static_cast<uint8_t>(c >> 8), static_cast<uint8_t>(c)}, kMask);
      CHECK(FailsWith(Role::kServer, 10, f) == kCloseProtocolError);
    }
  });
  Case("attack: a close reason that is not UTF-8 fails with 1007, as ws does; a valid one is a message", [&] {
    // Before the fix, any bytes were taken as the reason and handed up (ws fails the connection, 7.1.6).
    auto close = [&](Bytes reason) {
      Bytes p{0x03, 0xe8};
      p.insert(p.end(), reason.begin(), reason.end());
      return Frame(kClose, p, kMask);
    };
    for (const Bytes& bad : {Bytes{0xff}, Bytes{'a', 0xc3}, Bytes{0xc0, 0xaf}, Bytes{0xed, 0xa0, 0x80},
                             Bytes{0xf4, 0x90, 0x80, 0x80}, Bytes{0xe0, 0x80, 0xaf}, Bytes{0x80}})
      CHECK(FailsWith(Role::kServer, 10, close(bad)) == kCloseInvalidData);
    for (const Bytes& good : {Str("bye"), Bytes{0xc3, 0xa9}, Bytes{0xe2, 0x82, 0xac}, Bytes{0xf0, 0x9f, 0x98, 0x80},
                              Bytes{0xf4, 0x8f, 0xbf, 0xbf}, Bytes{0xed, 0x9f, 0xbf}})
      CHECK(ReadAll(Role::kServer, 10, close(good)).msgs.size() == 1);
  });
  Case("attack: a frame read one byte at a time keeps the footprint within 2 * max_message + kReadRoom", [&] {
    // Before the fix, a vector's own growth doubled buf_ past its cap: 128 KiB for max_message 0.
    for (size_t max : {size_t(0), size_t(125), size_t(4096), size_t(70000)}) {
      Reader r(Role::kServer, max);
      const Bytes s = Cat({Frame(kText, Fill(max), kMask), Frame(kBinary, Fill(max / 2), kMask, false),
                           Frame(kContinuation, Fill(max - max / 2), kMask)});
      const Got g = OneByteAtATime(&r, s);
      CHECK(g.code == 0 && g.msgs.size() == 2);
      CHECK(r.footprint() <= 2 * max + kReadRoom + kMaxHeader);
    }
  });
  Case("attack: many small fragments keep the footprint within 2 * max_message + kReadRoom", [&] {
    // Before the fix, frag_ doubled past max_message (64000 bytes gathered -> 128000 reserved).
    const size_t max = 64000;
    Reader r(Role::kServer, max);
    Bytes s = Frame(kBinary, Fill(1000), kMask, false);
    for (int i = 1; i < 63; i++) s = Cat({s, Frame(kContinuation, Fill(1000), kMask, false)});
    s = Cat({s, Frame(kContinuation, Fill(1000), kMask)});
    Got g;
    for (size_t off = 0; off < s.size(); off += 1000) {
      const size_t c = std::min(size_t(1000), s.size() - off);
      CHECK(r.Feed(s.data() + off, c));
      CHECK(Drain(&r, &g));
    }
    CHECK(g.msgs.size() == 1 && g.msgs[0].second.size() == max);
    CHECK(r.footprint() <= 2 * max + kReadRoom + kMaxHeader);
  });
  Case("attack: a read is offered at most kReadRoom, and a port gone quiet after a big message gives it back", [&] {
    // Before the fix, one ~256 KiB message left ~320 KiB per port for good, and every later read was offered all of it.
    const size_t max = 256 << 10;
    Reader r(Role::kServer, max);
    size_t room = 0;
    CHECK(r.ReadPtr(&room) != nullptr && room == kMinReadRoom);  // an idle port starts small
    const Bytes big = Frame(kBinary, Fill(max - 8), kMask);
    Got g;
    for (size_t off = 0; off < big.size();) {  // read as a socket gives it: the room offered each time, filled
      uint8_t* at = r.ReadPtr(&room);
      CHECK(at != nullptr && room > 0 && room <= kReadRoom);
      const size_t c = std::min(room, big.size() - off);
      memcpy(at, big.data() + off, c);
      r.Commit(c);
      off += c;
      CHECK(Drain(&r, &g));
    }
    CHECK(g.msgs.size() == 1 && g.msgs[0].second.size() == max - 8);
    CHECK(r.footprint() > 2 * kReadRoom);
    // Quiet: a few small messages, each read bringing little; the room falls back and the memory goes.
    for (int i = 0; i < 8; i++) {
      const Bytes ping = Frame(kPing, Fill(4), kMask);
      uint8_t* at = r.ReadPtr(&room);
      CHECK(at != nullptr && room <= kReadRoom);
      memcpy(at, ping.data(), ping.size());
      r.Commit(ping.size());
      CHECK(Drain(&r, &g));
    }
    CHECK(r.ReadPtr(&room) != nullptr && room == kMinReadRoom);
    CHECK(r.footprint() <= 2 * kReadRoom);
  });
}

void RoleAndBitCases() {
  Case("unmasked frame to a server role fails 1002",
       [&] { CHECK(FailsWith(Role::kServer, 100, Frame(kText, Str("x"), nullptr)) == kCloseProtocolError); });
  Case("masked frame to a client role fails 1002",
       [&] { CHECK(FailsWith(Role::kClient, 100, Frame(kText, Str("x"), kMask)) == kCloseProtocolError); });
  Case("RSV bits without an extension fail 1002", [&] {
    for (uint8_t rsv : {0x40, 0x20, 0x10}) {
      Bytes f = Frame(kText, Str("x"), kMask);
      f[0] |= rsv;
      CHECK(FailsWith(Role::kServer, 100, f) == kCloseProtocolError);
    }
  });
  Case("unknown opcodes fail 1002", [&] {
    for (uint8_t op : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15})
      CHECK(FailsWith(Role::kServer, 100, Frame(op, Str("x"), kMask)) == kCloseProtocolError);
  });
  Case("a control frame over 125 bytes fails 1002", [&] {
    for (uint8_t op : {kPing, kPong, kClose}) {
      Bytes p(126, 'r');  // a UTF-8 reason: a close's must be
      p[0] = 0x03, p[1] = 0xe8;
      CHECK(FailsWith(Role::kServer, 1 << 16, Frame(op, p, kMask)) == kCloseProtocolError);
      p.pop_back();  // 125 bytes: the largest control payload, taken
      CHECK(FailsWith(Role::kServer, 1 << 16, Frame(op, p, kMask)) == 0);
    }
  });
  Case("a fragmented control frame fails 1002",
       [&] { CHECK(FailsWith(Role::kServer, 100, Frame(kPing, Str("p"), kMask, false)) == kCloseProtocolError); });
  Case("a continuation without a start fails 1002", [&] {
    CHECK(FailsWith(Role::kServer, 100, Frame(kContinuation, Str("x"), kMask)) == kCloseProtocolError);
    CHECK(
        FailsWith(Role::kServer, 100, Cat({Frame(kText, Str("done"), kMask), Frame(kContinuation, Str("x"), kMask)})) ==
        kCloseProtocolError);
  });
  Case("a new data frame in the middle of a fragmented message fails 1002", [&] {
    for (uint8_t op : {kText, kBinary})
      CHECK(FailsWith(Role::kServer, 100, Cat({Frame(kText, Str("a"), kMask, false), Frame(op, Str("b"), kMask)})) ==
            kCloseProtocolError);
  });
}

void LengthAndSequenceCases() {
  Case("a 16-bit length over max_message fails 1009 before its payload arrives", [&] {
    Bytes f = Frame(kBinary, Fill(200), kMask);
    f.resize(8);  // the header alone
    CHECK(FailsWith(Role::kServer, 199, f) == kCloseTooBig);
    CHECK(FailsWith(Role::kServer, 200, Frame(kBinary, Fill(200), kMask)) == 0);
  });
  Case("a 64-bit length over max_message fails 1009 on the header alone", [&] {
    const uint8_t h[] = {0x82, 0xff, 0, 0, 0x01, 0, 0, 0, 0, 0, 1, 2, 3, 4};  // 2^40 bytes, masked
    CHECK(FailsWith(Role::kServer, 1 << 20, Bytes(h, h + sizeof h)) == kCloseTooBig);
    const uint8_t c[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x10, 0, 1};  // 1 MiB + 1 to a client, max 1 MiB
    CHECK(FailsWith(Role::kClient, 1 << 20, Bytes(c, c + sizeof c)) == kCloseTooBig);
  });
  Case("a 64-bit length with the top bit set fails 1002", [&] {
    const uint8_t h[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4};
    CHECK(FailsWith(Role::kServer, 1 << 20, Bytes(h, h + sizeof h)) == kCloseProtocolError);
  });
  Case("a fragmented message over max_message fails 1009", [&] {
    const Bytes s = Cat({Frame(kText, Fill(60), kMask, false), Frame(kContinuation, Fill(41), kMask)});
    CHECK(FailsWith(Role::kServer, 100, s) == kCloseTooBig);
    const Bytes ok = Cat({Frame(kText, Fill(60), kMask, false), Frame(kContinuation, Fill(40), kMask)});
    CHECK(FailsWith(Role::kServer, 100, ok) == 0);
  });
  Case("a close frame with a 1-byte payload or an invalid code fails 1002", [&] {
    CHECK(FailsWith(Role::kServer, 100, Frame(kClose, Bytes{3}, kMask)) == kCloseProtocolError);
    for (uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 2999, 5000})
      CHECK(FailsWith(Role::kServer, 100, Frame(kClose, Bytes{uint8_t(code >> 8), uint8_t(code)}, kMask)) ==
            kCloseProtocolError);
  });
  Case("after kError, Next stays kError, nothing more is read and messages before it were handed out", [&] {
    Reader r(Role::kServer, 100);
    const Bytes s =
        Cat({Frame(kText, Str("first"), kMask), Frame(kText, Str("x"), nullptr), Frame(kText, Str("y"), kMask)});
    Got g;
    CHECK(r.Feed(s.data(), s.size()));
    CHECK(!Drain(&r, &g));
    CHECK(g.msgs.size() == 1 && g.code == kCloseProtocolError && r.failed());
    Message m;
    CHECK(r.Next(&m) == Reader::kError && r.Next(&m) == Reader::kError && r.close_code() == kCloseProtocolError);
    size_t room = 1;
    CHECK(r.ReadPtr(&room) == nullptr && room == 0);
    CHECK(!r.Feed(s.data(), 1));
    CHECK(r.reason() != nullptr && strlen(r.reason()) > 0);
  });
}

}  // namespace wstest

int main(int argc, char** argv) {
  using namespace wstest;
  if (argc != 2) {
    fprintf(stderr, "usage: ws_frame_test <expected-frames-file>\n");
    return 2;
  }
  const std::vector<Expected> ws = LoadExpected(argv[1]);
  Case("the expected frames from ws were read", [&] { CHECK(ws.size() >= 8); });
  ReaderSplitCases();
  ReaderBoundCases();
  RoleAndBitCases();
  LengthAndSequenceCases();
  WriterCases(ws);
  OutputOrderCases(ws);
  OutputCapCases();
  printf("%d failed\n", g_failed_cases);
  return g_failed_cases == 0 ? 0 : 1;
}
