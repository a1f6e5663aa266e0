{
  "targets": [
    {
      "target_name": "stoker_native",
      "sources": ["stoker_native.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
