/* SPDX-License-Identifier: MIT */
/* Keeps the harness library non-empty before the fake driver lands. */
int vs_harness_placeholder(void);
int vs_harness_placeholder(void) { return 0; }
