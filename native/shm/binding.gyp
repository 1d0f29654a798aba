{
  "targets": [
    {
      "target_name": "myelin_shm",
      "sources": ["shm.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=c11"],
      "libraries": ["-lrt"]
    }
  ]
}
