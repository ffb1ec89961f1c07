// The proxy-wasm ABI 0.2.1 host functions this filter uses, exactly as Envoy exports them.
// AssemblyScript only emits imports that are called, so the compiled module's import list is the
// subset actually used (test/unit/filter-imports.test.ts checks it against Envoy's list).

@external("env", "proxy_log")
export declare function proxy_log(level: i32, messagePtr: usize, messageLen: usize): i32;

@external("env", "proxy_get_buffer_bytes")
export declare function proxy_get_buffer_bytes(bufferType: i32, start: usize, maxSize: usize, outPtrPtr: usize, outLenPtr: usize): i32;

@external("env", "proxy_set_buffer_bytes")
export declare function proxy_set_buffer_bytes(bufferType: i32, start: usize, length: usize, dataPtr: usize, dataLen: usize): i32;

@external("env", "proxy_get_header_map_value")
export declare function proxy_get_header_map_value(mapType: i32, keyPtr: usize, keyLen: usize, outPtrPtr: usize, outLenPtr: usize): i32;

@external("env", "proxy_get_header_map_pairs")
export declare function proxy_get_header_map_pairs(mapType: i32, outPtrPtr: usize, outLenPtr: usize): i32;

@external("env", "proxy_replace_header_map_value")
export declare function proxy_replace_header_map_value(mapType: i32, keyPtr: usize, keyLen: usize, valuePtr: usize, valueLen: usize): i32;

@external("env", "proxy_remove_header_map_value")
export declare function proxy_remove_header_map_value(mapType: i32, keyPtr: usize, keyLen: usize): i32;

@external("env", "proxy_send_local_response")
export declare function proxy_send_local_response(statusCode: u32, detailsPtr: usize, detailsLen: usize, bodyPtr: usize, bodyLen: usize, headersPtr: usize, headersLen: usize, grpcStatus: i32): i32;

@external("env", "proxy_get_current_time_nanoseconds")
export declare function proxy_get_current_time_nanoseconds(outPtr: usize): i32;

@external("env", "proxy_get_shared_data")
export declare function proxy_get_shared_data(keyPtr: usize, keyLen: usize, outPtrPtr: usize, outLenPtr: usize, outCasPtr: usize): i32;

@external("env", "proxy_set_shared_data")
export declare function proxy_set_shared_data(keyPtr: usize, keyLen: usize, valuePtr: usize, valueLen: usize, cas: u32): i32;

@external("env", "proxy_define_metric")
export declare function proxy_define_metric(metricType: i32, namePtr: usize, nameLen: usize, outIdPtr: usize): i32;

@external("env", "proxy_increment_metric")
export declare function proxy_increment_metric(metricId: u32, offset: i64): i32;

@external("env", "proxy_get_property")
export declare function proxy_get_property(pathPtr: usize, pathLen: usize, outPtrPtr: usize, outLenPtr: usize): i32;

@external("env", "proxy_grpc_stream")
export declare function proxy_grpc_stream(servicePtr: usize, serviceLen: usize, serviceNamePtr: usize, serviceNameLen: usize,
  methodPtr: usize, methodLen: usize, metadataPtr: usize, metadataLen: usize, tokenOutPtr: usize): i32;

@external("env", "proxy_grpc_send")
export declare function proxy_grpc_send(token: u32, messagePtr: usize, messageLen: usize, endStream: u32): i32;

@external("env", "proxy_grpc_cancel")
export declare function proxy_grpc_cancel(token: u32): i32;
