# Fault injection (issue #5): failing allocations inside the broker and
# failing writes and syncs of its data file. Test-only programs, never
# installed:
#   dipxd_fi          dipxd built from the same objects, its allocations
#                     wrapped by fi_alloc.c (-Wl,--wrap)
#   dipx_fi_io        LD_PRELOAD shim failing data.mdb I/O, or hiding each
#                     frame's descriptor (fi_io.c); built without sanitizers,
#                     in every build
add_executable(dipxd_fi ${PROJECT_SOURCE_DIR}/broker/dipxd_main.c
  ${CMAKE_CURRENT_LIST_DIR}/fi_alloc.c)
target_link_libraries(dipxd_fi PRIVATE dipx_broker ${CMAKE_DL_LIBS})
target_link_options(dipxd_fi PRIVATE
  "LINKER:--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup"
  "LINKER:--wrap=sodium_malloc,--wrap=dipx_server_run")

add_library(dipx_fi_io SHARED ${CMAKE_CURRENT_LIST_DIR}/fi_io.c)
target_compile_options(dipx_fi_io PRIVATE -fno-sanitize=all)
target_link_options(dipx_fi_io PRIVATE -fno-sanitize=all)
target_link_libraries(dipx_fi_io PRIVATE ${CMAKE_DL_LIBS})
target_include_directories(dipx_fi_io PRIVATE ${ZMQ_INCLUDE_DIRS})

add_library(dipx_fi_ledger STATIC ${CMAKE_CURRENT_LIST_DIR}/fi_ledger.c)
target_link_libraries(dipx_fi_ledger PUBLIC dipx_harness PkgConfig::CMOCKA)

# One ctest entry per case, so they run in parallel and a failure names its case.
function(dipx_fi_tests prog)
  cmake_parse_arguments(F "" "" "CASES;DEPENDS" ${ARGN})
  add_executable(${prog} ${CMAKE_CURRENT_LIST_DIR}/${prog}.c)
  target_link_libraries(${prog} PRIVATE dipx_fi_ledger)
  add_dependencies(${prog} dipxd ${F_DEPENDS})
  foreach(case ${F_CASES})
    add_test(NAME ${prog}.${case} COMMAND ${prog} ${case})
    set_tests_properties(${prog}.${case} PROPERTIES TIMEOUT 300 LABELS integration
      ENVIRONMENT "DIPX_BUILD_DIR=${PROJECT_BINARY_DIR};DIPX_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  endforeach()
endfunction()

dipx_fi_tests(test_fi_alloc CASES test_startup test_paths test_bursts test_resend_out_of_memory
  test_resend_failed_turn test_shutdown_writes_pending DEPENDS dipxd_fi)
dipx_fi_tests(test_fi_io CASES test_eio_data_transient test_eio_data_persistent
  test_eio_sync_transient test_eio_sync_persistent test_enospc_data_transient
  test_enospc_data_persistent test_eio_meta_transient test_hello_retried
  test_failed_hello_leaves_no_session test_unbound_session_rechecked
  test_full_send_queue_resumes test_full_send_queue_ack_during_pause test_loud_connection_bounded
  test_gone_connection_deliver_taken_back DEPENDS dipx_fi_io)
