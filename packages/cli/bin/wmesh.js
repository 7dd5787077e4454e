#!/usr/bin/env node
// Committed shim so npm can link the `wmesh` command before the first build.
import '../dist/bin.js'
