/*
** json_impl.h — what procy.json's two halves share: the encoder
** (json_encode.c) and the decoder and module (json.c).
*/
#ifndef PROCY_JSON_IMPL_H
#define PROCY_JSON_IMPL_H

#include "procy.h"

#define JSON_MAX_DEPTH 1000
#define ARRAY_MT "procy.json.array"
#define OBJECT_MT "procy.json.object"

/* encode(value, [opts]) -> text: json.encode */
int json_encode(lua_State *L);

#endif
