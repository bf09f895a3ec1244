# keys/ fuzz targets: every parser of untrusted key-management text (cards,
# registries, secret files). Seeds in corpus/<target>/: valid and broken files
# made with the library, plus inputs the fuzzer found worth keeping. In a
# DIPX_FUZZ build the root CMakeLists.txt compiles dipx_keys with coverage, so
# the targets link it as it is.
# MAX_LEN: above a card's 2,048 and a secret file's 1,024 bytes; a registry
# of a few dozen cards (its own limit, 64 MiB, is far beyond fuzzing).
dipx_fuzz(fuzz_card SOURCE ${CMAKE_CURRENT_LIST_DIR}/fuzz_card.c LIBS dipx_keys MAX_LEN 4096)
dipx_fuzz(fuzz_registry SOURCE ${CMAKE_CURRENT_LIST_DIR}/fuzz_registry.c LIBS dipx_keys
  MAX_LEN 70000)
dipx_fuzz(fuzz_secret SOURCE ${CMAKE_CURRENT_LIST_DIR}/fuzz_secret.c LIBS dipx_keys MAX_LEN 4096)
