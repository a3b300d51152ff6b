/* SPDX-License-Identifier: MIT */
/* The version the programs print (--version). */
#pragma once

/*
 * "0.1.0" in a release build (no git checkout, or built at the tag v0.1.0);
 * otherwise "0.1.0 (git DESCRIBE)", DESCRIBE being `git describe --tags
 * --always --dirty` of the tree at build time. The number comes from one
 * place, meson.build's project() version.
 */
const char *vserial_version(void);
