# bench_smoke: runs a tiny dipx-bench (200 messages, private broker) and
# checks that it exits 0 and that its JSON holds the figures' keys with
# sensible values. Speed is never asserted.
#   cmake -DBENCH=<dipx-bench> -DOUT=<json file> -P smoke.cmake
cmake_minimum_required(VERSION 3.19) # string(JSON)
file(REMOVE ${OUT})
execute_process(COMMAND ${BENCH} --messages 200 --inflight 32 --window 32 --no-micro --quiet
                        --json ${OUT}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "dipx-bench exited with ${rc}\n${out}\n${err}")
endif()
file(READ ${OUT} json)
foreach(key posted accepted received accepted_per_s e2e_per_s broker_cpu_us_per_msg
            client_cpu_us_per_msg disk_bytes_per_msg broker_rss_kb broker_hwm_kb
            data_mdb_bytes_before data_mdb_bytes_after)
  string(JSON value ERROR_VARIABLE jerr GET "${json}" ${key})
  if(jerr OR value STREQUAL "null")
    message(FATAL_ERROR "key '${key}' missing or null in ${OUT}: ${jerr}\n${json}")
  endif()
endforeach()
foreach(key p50 p99 p999 max samples)
  string(JSON value ERROR_VARIABLE jerr GET "${json}" latency_ms ${key})
  if(jerr OR value STREQUAL "null")
    message(FATAL_ERROR "key 'latency_ms.${key}' missing or null in ${OUT}: ${jerr}")
  endif()
endforeach()
foreach(key accepted received)
  string(JSON value GET "${json}" ${key})
  if(NOT value EQUAL 200)
    message(FATAL_ERROR "${key} is ${value}, expected 200")
  endif()
endforeach()
string(JSON samples GET "${json}" latency_ms samples)
if(NOT samples EQUAL 200)
  message(FATAL_ERROR "latency samples: ${samples}, expected 200")
endif()

# The deep-queue run: the same run before and after queueing, with subjects
# drawn from a fixed set. Both runs must be there and complete.
execute_process(COMMAND ${BENCH} --mode replay --messages 100 --prequeue 150 --subjects 2
                        --inflight 32 --window 32 --no-micro --quiet --json ${OUT}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out2 ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "dipx-bench --prequeue exited with ${rc}\n${out2}\n${err}")
endif()
file(READ ${OUT} json)
foreach(path "prequeue;count" "prequeue;before;e2e_per_s" "prequeue;e2e_ratio" "config;subjects"
             "accepted")
  string(JSON value ERROR_VARIABLE jerr GET "${json}" ${path})
  if(jerr OR value STREQUAL "null")
    message(FATAL_ERROR "'${path}' missing or null in ${OUT}: ${jerr}\n${json}")
  endif()
endforeach()
string(JSON queued GET "${json}" prequeue count)
string(JSON accepted GET "${json}" accepted)
string(JSON subjects GET "${json}" config subjects)
if(NOT queued EQUAL 150 OR NOT accepted EQUAL 100 OR NOT subjects EQUAL 2)
  message(FATAL_ERROR "queued ${queued}, accepted ${accepted}, subjects ${subjects}: "
                      "expected 150, 100, 2")
endif()
# Receivers that only acknowledge (signed ACKs, no verification or opening):
# every message arrives, with its latency, and nothing is redelivered. This
# run also makes the per-operation measurements, which must all be there.
execute_process(COMMAND ${BENCH} --mode replay --receive ack --messages 200 --inflight 32
                        --window 32 --quiet --json ${OUT}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out3 ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "dipx-bench --receive ack exited with ${rc}\n${out3}\n${err}")
endif()
file(READ ${OUT} json)
string(JSON receive GET "${json}" config receive)
string(JSON received GET "${json}" received)
string(JSON redelivered GET "${json}" redelivered)
string(JSON samples GET "${json}" latency_ms samples)
if(NOT receive STREQUAL "ack" OR NOT received EQUAL 200 OR NOT redelivered EQUAL 0
   OR NOT samples EQUAL 200)
  message(FATAL_ERROR "--receive ack: receive ${receive}, received ${received}, redelivered "
                      "${redelivered}, samples ${samples}: expected ack, 200, 0, 200")
endif()
foreach(key ed25519_sign_us ed25519_verify_us curve_box_payload_us seal_envelope_us
            fdatasync_4k_ms commit_pages commit_scattered_ms commit_scattered_cpu_us
            commit_contiguous_ms commit_contiguous_cpu_us)
  string(JSON value ERROR_VARIABLE jerr GET "${json}" micro ${key})
  if(jerr OR value STREQUAL "null" OR NOT value GREATER 0)
    message(FATAL_ERROR "key 'micro.${key}' missing, null or not positive: ${jerr}\n${json}")
  endif()
endforeach()
message(STATUS "bench_smoke: ok\n${out}\n${out2}\n${out3}")
