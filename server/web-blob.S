/*
 * The dashboard's files (web/), compiled into the durin binary and served
 * by server/web.c. As server/openapi-blob.S: meson.build assembles this
 * with `-Wa,-I<srcdir>/web` and lists every file as an input, so editing
 * one rebuilds this object; no generator runs at build time.
 *
 * For each file, durin__web_NAME is its first byte and durin__web_NAME_end
 * one past its last. A file added to web/ is listed here, in meson.build
 * and in web.c's table.
 */
  .macro webfile sym, path
  .section .rodata
  .balign 16
  .globl durin__web_\sym
  .type durin__web_\sym, @object
durin__web_\sym:
  .incbin "\path"
  .globl durin__web_\sym\()_end
durin__web_\sym\()_end:
  .byte 0
  .size durin__web_\sym, . - durin__web_\sym
  .endm

  webfile index_html, "index.html"
  webfile app_css, "app.css"
  webfile app_js, "app.js"
  webfile api_js, "api.js"
  webfile sse_js, "sse.js"
  webfile dom_js, "dom.js"
  webfile runs_js, "runs.js"
  webfile run_js, "run.js"
  webfile approvals_js, "approvals.js"
  webfile workers_js, "workers.js"
  webfile chart_js, "chart.js"
  webfile icon_svg, "icon.svg"

/* No executable stack for the binary on this object's account. */
  .section .note.GNU-stack, "", @progbits
