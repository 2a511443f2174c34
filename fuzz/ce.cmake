# Fuzz targets of the ce module: each decodes, then checks that encoding and decoding again
# gives back an equal event (aborting when it does not).
weir_fuzz_target(ce_structured ${CMAKE_CURRENT_SOURCE_DIR}/ce_structured.c weir_ce)
weir_fuzz_target(ce_batch ${CMAKE_CURRENT_SOURCE_DIR}/ce_batch.c weir_ce)
weir_fuzz_target(ce_binary ${CMAKE_CURRENT_SOURCE_DIR}/ce_binary.c weir_ce)
