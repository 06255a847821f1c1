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
-- lock: one holder at a time, in this process or another; the kernel lets
-- it go when the holder exits
local proc, core = require "procy.proc", require "procy.core"
local lf = dir .. "/lock"
local a = fs.lock(lf)
T.ok(a, "lock: a free lock is taken")
T.is(fs.lock(lf), false, "a held lock is refused at once (false), also in the process holding it")
a:release()
do
  local b <close> = fs.lock(lf)
  T.ok(b, "a released lock can be taken again")
end
-- free(): whether the lock can be had now, not keeping it
local function free()
  local l = fs.lock(lf)
  if l then l:release() end
  return l ~= false
end
T.ok(free(), "a <close> local lets it go")
local holder = assert(proc.spawn { "flock", "-o", lf, "sleep", "60" })
local t0 = core.now()
while free() and core.now() - t0 < 30 do core.sleep(0.02) end
T.is(fs.lock(lf), false, "a lock another process holds (flock(1)) is refused")
holder:kill("KILL")
holder:wait()
T.ok(free(), "the holder killed, the lock is free: nothing stale is left")
r, err, code = fs.lock(dir .. "/nope/lock")
T.is(code, "ENOENT", "a lock in a missing directory fails with ENOENT")
T.like(err, "nope/lock", "naming the path")
-- copy: the bytes, the mode, the modification time (an index keeps its own)
local src = dir .. "/src.bin"
do
  local f = assert(io.open(src, "wb"))
  f:write(("0123456789"):rep(20000), "\0tail")
  f:close()
end
proc.run { "chmod", "640", src }
proc.run { "touch", "-d", "2001-02-03 04:05:06.123456789", src }
T.ok(fs.copy(src, dir .. "/dst.bin"), "copy")
local a, b = fs.stat(src), fs.stat(dir .. "/dst.bin")
T.ok(T.read(dir .. "/dst.bin") == T.read(src), "the bytes, all 200 KB and a NUL")
T.is(("%o %.6f"):format(b.mode, b.mtime), ("%o %.6f"):format(a.mode, a.mtime), "its mode and modification time, to the µs")
T.write(dir .. "/dst.bin", "longer old contents that must go away entirely")
T.write(dir .. "/short", "x")
assert(fs.copy(dir .. "/short", dir .. "/dst.bin"))
T.is(T.read(dir .. "/dst.bin"), "x", "over an existing file: truncated first")
proc.run { "mkfifo", dir .. "/fifo" }
r, err, code = fs.copy(dir .. "/fifo", dir .. "/x")
T.is(code, "EINVAL", "a FIFO is no file to copy (and nothing hangs)")
proc.run { "ln", "-s", dir .. "/elsewhere", dir .. "/link" }
r, err, code = fs.copy(src, dir .. "/link")
T.ok(not r and not fs.stat(dir .. "/elsewhere"), "nor is a symbolic link followed to write", tostring(code))
r, err, code = fs.copy(dir .. "/missing", dir .. "/x")
T.ok(code == "ENOENT" and err:find("missing", 1, true), "a missing file: ENOENT, naming it")
proc.run { "rm", "-rf", dir }
return T.done()
