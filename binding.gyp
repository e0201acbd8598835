{
  "targets": [
    {
      "target_name": "tap",
      "sources": ["native/tap.cc", "native/unixdgram.cc", "native/poll_reader.cc", "native/busy_poll.cc", "native/fastpath.cc", "native/datapath.cc",
                  "native/peer.cc", "native/process.cc", "native/ws_frame.cc", "native/ws_output.cc",
                  "native/ws_link.cc", "native/ws_link_tap.cc", "native/ws_link_binding.cc", "native/datapath_ws.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags!": ["-O3"],
      "cflags_cc!": ["-O3", "-std=gnu++17"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra"]
    },
    {
      "target_name": "tapswitch-sandbox",
      "type": "executable",
      "sources": ["native/sandbox.cc"],
      "cflags!": ["-O3"],
      "cflags_cc!": ["-O3", "-std=gnu++17"],
      "cflags_cc": ["-O2", "-std=c++17", "-Wall", "-Wextra"]
    }
  ]
}
