-- procy.fs
local T = require "lib.tap"
local fs = require "procy.fs"

local dir = T.tmpdir()
T.ok(fs.mkdir(dir .. "/a/b/c"), "mkdir creates parents")
T.ok(fs.mkdir(dir .. "/a/b/c"), "an existing directory is fine")
T.write(dir .. "/a/file", "12345")
local st = assert(fs.stat(dir .. "/a/file"))
T.is(st.type, "file", "stat type")
T.is(st.size, 5, "stat size")
T.is(fs.stat(dir .. "/a").type, "dir", "a directory")
local r, err, code = fs.stat(dir .. "/nope")
T.is(code, "ENOENT", "stat of a missing path fails with ENOENT")
T.like(err, "nope: No such file or directory", "naming the path")
r, err, code = fs.mkdir(dir .. "/a/file/x")
T.is(code, "ENOTDIR", "mkdir through a file fails")
T.write(dir .. "/a/b/z", "") T.write(dir .. "/a/b/y", "")
T.is(table.concat(fs.dir(dir .. "/a/b"), ","), "c,y,z", "dir lists sorted names")
T.is(fs.realpath(dir .. "/a/b/../file"), fs.realpath(dir) .. "/a/file", "realpath")
local here = fs.cwd()
T.ok(here:sub(1, 1) == "/", "cwd is absolute")
require("procy.proc").run { "rm", "-rf", dir }
return T.done()
