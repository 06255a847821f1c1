-- procy.git: git that the agent cannot program. A repository with every
-- kind of program-starting configuration planted (each program, if it
-- ran, would leave a marker file): procy's snapshot, restore, fork
-- checkout, worktree add and remove all work, and no marker appears. Also
-- core.worktree pointing elsewhere (a restore must not write there) and a
-- directory swapped for a symbolic link (a restore's removal must not
-- follow it out).
local T = require "lib.tap"
local fs = require "procy.fs"
local config = require "procy.config"
local gitx = require "procy.git"
local proc = require "procy.proc"
local function sh(cmd) return assert(proc.run { "sh", "-c", cmd }) end

local dir = T.tmpdir()
assert(config.load { config = T.write(dir .. "/procy.lua", ("return { db = %q }"):format(dir .. "/rec.db")) })
local snapshot = require "procy.snapshot"
local work, marks = dir .. "/work", dir .. "/marks"
fs.mkdir(work)
fs.mkdir(marks)
fs.mkdir(dir .. "/elsewhere")
fs.mkdir(dir .. "/outside")
T.write(dir .. "/outside/keep.txt", "the person's\n")

T.write(work .. "/a.txt", "one\n")
fs.mkdir(work .. "/sub")
T.write(work .. "/sub/keep.txt", "tracked\n")
T.git(work, "init", "-q")
T.git(work, "add", "-A")
T.git(work, "-c", "user.name=p", "-c", "user.email=p@l", "commit", "-qm", "base")

-- a program that says it ran
local function prog(name) return ("touch %s/%s; cat"):format(marks, name) end
local function plant(...) T.git(work, "config", ...) end
plant("core.fsmonitor", prog("fsmonitor"))
plant("core.pager", prog("pager"))
plant("pager.diff", prog("pager-diff"))
plant("core.askPass", prog("askpass"))
plant("credential.helper", prog("credential"))
plant("gpg.program", prog("gpg"))
plant("commit.gpgSign", "true")
plant("core.sshCommand", prog("ssh"))
plant("protocol.allow", "always")
plant("diff.external", prog("external-diff"))
plant("core.editor", prog("editor"))
plant("core.alternateRefsCommand", prog("alternate-refs"))
plant("filter.evil.clean", prog("filter-clean"))
plant("filter.evil.smudge", prog("filter-smudge"))
plant("filter.evil.required", "true")
plant("filter.proc.process", prog("filter-process"))
plant("diff.evil.textconv", prog("textconv"))
plant("diff.evil.command", prog("diff-command"))
plant("merge.evil.driver", prog("merge-driver"))
-- a filter whose name has dots and an '=' in it, from an included file
T.write(dir .. "/included.cfg", ('[filter "a=b.c"]\n\tclean = %s\n\tsmudge = %s\n[core]\n\tfsmonitor = %s\n')
  :format(prog("include-clean"), prog("include-smudge"), prog("include-fsmonitor")))
plant("include.path", dir .. "/included.cfg")
plant("includeIf.gitdir:" .. work .. "/.git.path", dir .. "/included.cfg")
T.write(work .. "/.gitattributes", "*.txt filter=evil diff=evil merge=evil\n*.md filter=proc\n*.dat filter=a=b.c\n")
-- hooks, in the repository and in a core.hooksPath of its own
local hooks = { "reference-transaction", "post-checkout", "pre-commit", "post-commit", "post-index-change",
  "pre-auto-gc", "post-rewrite", "fsmonitor-watchman" }
fs.mkdir(dir .. "/hooks")
for _, h in ipairs(hooks) do
  for _, d in ipairs { work .. "/.git/hooks", dir .. "/hooks" } do
    T.write(d .. "/" .. h, ("#!/bin/sh\ntouch %s/hook-%s\n"):format(marks, h))
    assert(proc.run { "chmod", "+x", d .. "/" .. h })
  end
end
-- (the hooksPath one is planted once the repository's own were tried)

local function ran()
  local list = fs.dir(marks) or {}
  table.sort(list)
  return table.concat(list, " ")
end

local function round(label)
  local r = assert(snapshot.open(work))
  T.is(r.top, work, label .. ": the work tree found from .git, not from git's config")
  T.write(work .. "/a.txt", "two " .. label .. "\n")
  T.write(work .. "/b.md", "md\n")
  T.write(work .. "/c.dat", "dat\n")
  local c1, err = r:take("refs/procy/t/" .. label .. "-1", "first")
  T.ok(c1, label .. ": a snapshot is taken", err)
  T.write(work .. "/a.txt", "three\n")
  T.write(work .. "/new.txt", "new\n")
  local c2 = assert(r:take("refs/procy/t/" .. label .. "-2", "second"))
  local ch = assert(r:changes(c1, c2))
  T.is(#ch, 2, label .. ": its changes listed")
  local res, rerr = r:restore(c2, c1)
  T.ok(res and res.written == 1 and res.removed == 1, label .. ": restored", rerr)
  T.is(T.read(work .. "/a.txt"), "two " .. label .. "\n", label .. ": the file as it was")
  local wt = dir .. "/wt-" .. label
  local w2, werr = r:worktree(wt, c1)
  T.ok(w2 and T.read(wt .. "/a.txt") == "two " .. label .. "\n", label .. ": a worktree of the snapshot", werr)
  T.ok(r:remove_worktree(wt), label .. ": and removed")
  T.is(ran(), "", label .. ": no program the repository's config names ran")
end
round("planted")

plant("core.hooksPath", dir .. "/hooks")
round("hookspath")

-- core.worktree elsewhere: procy's restore still writes in the work tree
plant("core.worktree", dir .. "/elsewhere")
round("worktree")
T.is(#(fs.dir(dir .. "/elsewhere") or {}), 0, "core.worktree's directory got nothing")
T.git(work, "config", "--unset", "core.worktree")

-- a directory of the snapshot swapped for a link out: its files' removal
-- does not follow it
local r = assert(snapshot.open(work))
T.write(work .. "/sub/gone.txt", "x\n")
T.write(work .. "/sub/keep.txt", "tracked\n")
local c1 = assert(r:take("refs/procy/t/link-1", "with sub/"))
sh(("rm -rf %s/sub && ln -s %s/outside %s/sub && cp %s/outside/keep.txt %s/outside/gone.txt"):format(
  work, dir, work, dir, dir))
local c2 = assert(r:take("refs/procy/t/link-2", "sub a link"))
T.write(work .. "/sub2", "")
os.remove(work .. "/sub")
sh(("ln -s %s/outside %s/sub"):format(dir, work))
local res = r:restore(c1, c2)
T.ok(fs.stat(dir .. "/outside/gone.txt"), "a removal does not follow a link the agent made out of the tree", res and res.removed)
T.is(T.read(dir .. "/outside/keep.txt"), "the person's\n", "and the file outside is untouched")

-- the overrides: every key of procy.git's list, and each driver named
local o = gitx.overrides(select(2, gitx.find(work)) and { top = work, git_dir = work .. "/.git" })
local keys = {}
for _, kv in ipairs(o) do keys[kv[1]] = kv[2] end
T.ok(keys["filter.evil.clean"] == "" and keys["filter.a=b.c.smudge"] == "" and keys["filter.proc.process"] == ""
  and keys["diff.evil.textconv"] == "" and keys["merge.evil.driver"] == "", "each driver the config names is blanked")
T.is(ran(), "", "nothing ran at all")

-- the driver list is kept while the config reads the same (no include
-- here): a driver added after it was made is blanked all the same
local w2 = dir .. "/work2"
fs.mkdir(w2)
T.write(w2 .. "/a.txt", "one\n")
T.git(w2, "init", "-q")
local r2 = assert(snapshot.open(w2))
assert(r2:take("refs/procy/t/cache-1", "first"))
T.git(w2, "config", "filter.late.clean", prog("late-clean"))
T.git(w2, "config", "filter.late.required", "true")
T.write(w2 .. "/.gitattributes", "*.txt filter=late\n")
T.write(w2 .. "/a.txt", "two\n")
T.ok(r2:take("refs/procy/t/cache-2", "second"), "a snapshot after the agent adds a filter to the config")
T.is(ran(), "", "the filter added since the last command did not run")
-- a FIFO where git's worktree config would be: procy does not hang reading it
sh(("mkfifo %s/.git/config.worktree"):format(w2))
T.write(w2 .. "/a.txt", "three\n")
T.ok(r2:take("refs/procy/t/cache-3", "third"), "a FIFO planted as config.worktree hangs nothing")
os.remove(w2 .. "/.git/config.worktree")
sh(("ln -s /dev/zero %s/.git/config.worktree"):format(w2))
T.ok(r2:take("refs/procy/t/cache-4", "fourth"), "nor does a link to /dev/zero")
T.is(ran(), "", "and nothing ran")
return T.done()
