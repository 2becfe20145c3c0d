"""Hostile inputs the tests build: files that try to hang, exhaust or execute."""

# Ten lines of YAML that expand to 9**9 (387 million) strings once walked or printed.
ALIAS_BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'] +
    [f"{b}: &{b} [{','.join(['*' + a] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")] +
    ["data: *i"])
