# Build options, all prefixed DIPX_ (nng's NNGOptions.cmake idea).
option(DIPX_TESTS "Build the test suite (needs cmocka)" ON)
option(DIPX_BENCH "Build the benchmark programs in bench/" ON)
option(DIPX_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(DIPX_FUZZ "Build libFuzzer targets (clang only)" OFF)
