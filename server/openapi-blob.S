/*
 * server/openapi.json, compiled into the durin binary (served by
 * server/openapi.c as GET /v1/openapi.json). meson.build assembles this
 * file with `-Wa,-I<srcdir>/server`, so .incbin finds the document there,
 * and lists the document as an input, so editing it rebuilds this object:
 * the binary serves exactly the file in the tree, with no generator (xxd,
 * python) at build time.
 *
 *   durin__openapi_json       its first byte
 *   durin__openapi_json_end   one past its last byte (a NUL follows)
 *   durin__openapi_json_size  its length in bytes (a uint64_t)
 */
  .section .rodata
  .balign 16
  .globl durin__openapi_json
  .type durin__openapi_json, @object
durin__openapi_json:
  .incbin "openapi.json"
  .globl durin__openapi_json_end
durin__openapi_json_end:
  .byte 0
  .size durin__openapi_json, . - durin__openapi_json

  .balign 8
  .globl durin__openapi_json_size
  .type durin__openapi_json_size, @object
durin__openapi_json_size:
  .quad durin__openapi_json_end - durin__openapi_json
  .size durin__openapi_json_size, 8

/* No executable stack for the binary on this object's account. */
  .section .note.GNU-stack, "", @progbits
