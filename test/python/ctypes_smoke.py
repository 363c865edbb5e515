"""ctypes smoke test: the shared library is usable from Python with no
compiler and no extension module — threaded manager, a Python callback that
echoes, a real websockets client, a clean stop.

Usage: ctypes_smoke.py PATH/TO/libagentws.so.0
"""
import asyncio
import ctypes as C
import sys
import threading

import websockets

lib = C.CDLL(sys.argv[1])

P = C.c_void_p
lib.agentws_version.restype = C.c_uint
lib.agentws_version_string.restype = C.c_char_p
lib.agentws_strerror.argtypes = [C.c_int]
lib.agentws_strerror.restype = C.c_char_p
lib.agentws_config_new.argtypes = [C.POINTER(P)]
lib.agentws_config_free.argtypes = [P]
lib.agentws_config_set_ping_interval_ms.argtypes = [P, C.c_int64]
lib.agentws_config_set_raw_messages.argtypes = [P, C.c_int]
lib.agentws_callbacks_new.argtypes = [C.POINTER(P)]
lib.agentws_callbacks_free.argtypes = [P]
ON_MESSAGE = C.CFUNCTYPE(C.c_int, P, C.c_uint64, C.c_int,
                         C.POINTER(C.c_uint8), C.c_size_t, P)
ON_OPEN = C.CFUNCTYPE(None, P, C.c_uint64, P)
lib.agentws_callbacks_set_on_message.argtypes = [P, ON_MESSAGE]
lib.agentws_callbacks_set_on_open.argtypes = [P, ON_OPEN]
lib.agentws_manager_new_threaded.argtypes = [C.POINTER(P), P, P, P]
lib.agentws_manager_listen.argtypes = [P, C.c_char_p, C.c_int,
                                       C.POINTER(C.c_int)]
lib.agentws_manager_start.argtypes = [P]
lib.agentws_manager_stop.argtypes = [P]
lib.agentws_manager_free.argtypes = [P]
lib.agentws_conn_send.argtypes = [P, C.c_uint64, C.c_int,
                                  C.POINTER(C.c_uint8), C.c_size_t]


def check(rv):
    if rv != 0:
        raise RuntimeError(lib.agentws_strerror(rv).decode())


assert lib.agentws_version() >= 0x000100, hex(lib.agentws_version())
assert lib.agentws_version_string().decode().count(".") == 2
assert lib.agentws_strerror(-1004) == b"no such connection"

loop_thread = []
opened = []


@ON_OPEN
def on_open(m, conn, ud):
    opened.append(conn)


@ON_MESSAGE
def on_message(m, conn, typ, data, length, ud):
    loop_thread.append(threading.get_ident())
    return lib.agentws_conn_send(m, conn, typ, data, length)


cfg, cbs, mgr = P(), P(), P()
check(lib.agentws_config_new(C.byref(cfg)))
check(lib.agentws_config_set_ping_interval_ms(cfg, 0))
check(lib.agentws_config_set_raw_messages(cfg, 1))
check(lib.agentws_callbacks_new(C.byref(cbs)))
lib.agentws_callbacks_set_on_message(cbs, on_message)
lib.agentws_callbacks_set_on_open(cbs, on_open)
check(lib.agentws_manager_new_threaded(C.byref(mgr), cfg, cbs, None))
lib.agentws_config_free(cfg)
lib.agentws_callbacks_free(cbs)
port = C.c_int(0)
check(lib.agentws_manager_listen(mgr, b"127.0.0.1", 0, C.byref(port)))
check(lib.agentws_manager_start(mgr))


async def client():
    async with websockets.connect(f"ws://127.0.0.1:{port.value}/ws",
                                  subprotocols=["agentws.v1"]) as ws:
        assert ws.subprotocol == "agentws.v1"
        for msg in ["hello", "ünïcödé", b"\x00\x01\x02"]:
            await ws.send(msg)
            assert await asyncio.wait_for(ws.recv(), 5) == msg


asyncio.run(asyncio.wait_for(client(), 20))
check(lib.agentws_manager_stop(mgr))
lib.agentws_manager_free(mgr)
assert opened and opened[0] >= 1
assert loop_thread and loop_thread[0] != threading.get_ident()
print("ctypes smoke: ok")
