# The store benchmark: events per second and latency through weir_store_write_sync from N
# threads. Run <build>/store_bench (see the usage at the top of store_bench.c).
add_executable(store_bench ${CMAKE_CURRENT_LIST_DIR}/store_bench.c)
target_link_libraries(store_bench PRIVATE weir_store)
