# keys/ fuzz targets: every parser of untrusted key-management text (cards,
# registries, secret files). Seeds in corpus/<target>/: valid and broken files
# made with the library, plus inputs the fuzzer found worth keeping. In a
# DIPX_FUZZ build the root CMakeLists.txt compiles dipx_keys with coverage, so
# the targets link it as it is.
foreach(t fuzz_card fuzz_registry fuzz_secret)
  dipx_fuzz(${t} SOURCE ${CMAKE_CURRENT_LIST_DIR}/${t}.c LIBS dipx_keys)
endforeach()
