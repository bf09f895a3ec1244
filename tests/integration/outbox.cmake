# The client's durable outbox against a real dipxd (broker down, restarts of
# the agency system, more sends than the in-memory pending table). Reads the
# client's private counters, so it sees client/, and damages outbox entries
# through LMDB.
dipx_test(test_outbox SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_outbox.c
  LIBS dipx_harness PkgConfig::LMDB TIMEOUT 300 LABELS integration)
target_include_directories(test_outbox PRIVATE ${PROJECT_SOURCE_DIR}/client)
add_dependencies(test_outbox dipxd)
# test_outbox_dirs_synced sees libdipx's fsync calls.
target_link_options(test_outbox PRIVATE -Wl,--wrap=fsync)
