#!/usr/bin/python3
#
# test/fuzz/deep_json.py: print JSON messages nested DEPTH levels deep, one
# per line, for kcat -P.
#
# Usage: deep_json.py ID:KIND:DEPTH ...   KIND is "object" or "array"; each
# argument prints {"id": ID, "doc": V} where V is nested DEPTH levels deep
# (objects as {"a": {"a": ... 1 ...}}, arrays as [[ ... 1 ... ]]).
# KIND "top" prints an array nested DEPTH levels as the whole value.

import sys


def nested(kind, depth):
    if kind == 'object':
        return '{"a": ' * depth + '1' + '}' * depth
    return '[' * depth + '1' + ']' * depth


for arg in sys.argv[1:]:
    ident, kind, depth = arg.split(':')
    depth = int(depth)
    if kind == 'top':
        print(nested('array', depth))
    else:
        print('{"id": %d, "doc": %s}' % (int(ident), nested(kind, depth)))
