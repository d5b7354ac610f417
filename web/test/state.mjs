// Shorthands the node unit tests share: a plain write and a read of key in
// app 'a', store 'st', of a JSON value (a read answers the error's code
// name when it fails).
import { utf8, fromUTF8 } from '../src/wire.js';

export const opts = { etag: '', ttlMs: 0, ifAbsent: false };
export const put = (s, key, v) => s.set('a', 'st', key, utf8(JSON.stringify(v)), opts);
export const get = (s, key) => {
  try {
    return JSON.parse(fromUTF8(s.get('a', 'st', key).value));
  } catch (e) {
    return e.codeName;
  }
};
