-- secrets.lua: a secret of every shape procy's rule set knows, as a test
-- plants it, and what must never be seen of it.
local M = {}

-- {name, secret as planted, what must never be seen of it (default: all)}
M.list = {
  { "anthropic", "sk-ant-api03-" .. ("A1b2C3d4"):rep(10) },
  { "openai project", "sk-proj-" .. ("Z9y8X7w6"):rep(6) },
  { "openrouter", "sk-or-v1-" .. ("0f1e2d3c"):rep(8) },
  { "google", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4o5p6q" },
  { "github", "ghp_" .. ("aB3dE6gH9jK2mN5pQ8sT"):rep(2) },
  { "github pat", "github_pat_11ABCDEFG0_" .. ("abcdefghij"):rep(5) },
  { "aws key id", "AKIAIOSFODNN7EXAMPLE" },
  { "aws secret", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" },
  { "slack", "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp" },
  { "jwt", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U" },
  { "pem", "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAxyzPRIVATEKEYMATERIAL0123\n-----END RSA PRIVATE KEY-----",
    "MIIEowIBAAKCAQEAxyzPRIVATEKEYMATERIAL0123" },
  -- a key behind a JSON escape, in a JSON string (planted once: encoding
  -- it again would make the escape a backslash)
  { "escaped", '{"k": "sk\\u002dant-api03-' .. ("E5c4P3d2"):rep(8) .. '"}', ("E5c4P3d2"):rep(8), once = true },
  { "own pattern", "ACME-INTERNAL-7f3a9c2e11", own = true },
}

-- own: the pattern a person's procy.lua adds for the "own pattern" shape
M.own = "ACME%-INTERNAL%-%x+"

-- probe(s) -> what must never be seen of secret s
function M.probe(s) return s[3] or s[2] end

return M
