// NO_PROXY as curl reads it (plus host:port and `*` anywhere): which targets go direct.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NoProxy } from '../../src/config/no-proxy.js';

const bypasses = (list: string | string[], host: string, port = 443) => NoProxy.parse(list).bypasses(host, port);

describe('NO_PROXY matching', () => {
  test('empty: nothing bypasses, not even localhost or 127.0.0.1', () => {
    for (const list of ['', ' , ,', []]) {
      assert.equal(bypasses(list, 'localhost'), false);
      assert.equal(bypasses(list, '127.0.0.1'), false);
      assert.equal(bypasses(list, '[::1]'), false);
    }
  });

  test('a host name matches itself and names under it, whatever the case, with or without a trailing dot', () => {
    const list = 'corp.example';
    for (const host of ['corp.example', 'api.corp.example', 'a.b.corp.example', 'API.Corp.Example', 'api.corp.example.']) assert.equal(bypasses(list, host), true, host);
    for (const host of ['notcorp.example', 'corp.example.org', 'example', 'corp-example']) assert.equal(bypasses(list, host), false, host);
  });

  test('.suffix and *.suffix match the domain itself too, as curl does', () => {
    for (const list of ['.corp.example', '*.corp.example', 'corp.example.']) {
      assert.equal(bypasses(list, 'corp.example'), true, list);
      assert.equal(bypasses(list, 'api.corp.example'), true, list);
      assert.equal(bypasses(list, 'xcorp.example'), false, list);
    }
  });

  test('an IP address matches that address only, and only IP-literal targets (no name is resolved)', () => {
    assert.equal(bypasses('10.1.2.3', '10.1.2.3'), true);
    assert.equal(bypasses('10.1.2.3', '10.1.2.4'), false);
    assert.equal(bypasses('127.0.0.1', 'localhost'), false);
    assert.equal(bypasses('localhost', '127.0.0.1'), false);
    assert.equal(bypasses('::1', '[::1]'), true);
    assert.equal(bypasses('[::1]', '[::1]'), true);
    assert.equal(bypasses('::1', '127.0.0.1'), false);
  });

  test('CIDR ranges, IPv4 and IPv6', () => {
    assert.equal(bypasses('10.0.0.0/8', '10.200.3.4'), true);
    assert.equal(bypasses('10.0.0.0/8', '11.0.0.1'), false);
    assert.equal(bypasses('192.168.0.0/16,172.16.0.0/12', '172.31.255.255'), true);
    assert.equal(bypasses('192.168.0.0/16,172.16.0.0/12', '172.32.0.1'), false);
    assert.equal(bypasses('fd00::/8', '[fd12:3456::1]'), true);
    assert.equal(bypasses('[fd00::/8]', '[fd12:3456::1]'), true);
    assert.equal(bypasses('fd00::/8', '[fe80::1]'), false);
    assert.equal(bypasses('0.0.0.0/0', '8.8.8.8'), true);
    assert.equal(bypasses('10.0.0.0/8', 'ten.example'), false, 'a range never matches a name');
  });

  test('host:port matches that port only; default ports count', () => {
    const list = 'api.example:8443,10.0.0.0/8:80,[::1]:9000';
    assert.equal(bypasses(list, 'api.example', 8443), true);
    assert.equal(bypasses(list, 'sub.api.example', 8443), true);
    assert.equal(bypasses(list, 'api.example', 443), false);
    assert.equal(bypasses(list, '10.9.9.9', 80), true);
    assert.equal(bypasses(list, '10.9.9.9', 443), false);
    assert.equal(bypasses(list, '[::1]', 9000), true);
    assert.equal(bypasses(list, '[::1]', 9001), false);
  });

  test('* bypasses everything, alone or as one entry of a list', () => {
    for (const list of ['*', 'corp.example,*', [' * ']]) {
      for (const host of ['anything.example', '10.0.0.1', '[::1]', 'localhost']) assert.equal(bypasses(list, host), true, `${String(list)} ${host}`);
    }
  });

  test('entries are separated by commas and blanks; a list may be given as an array', () => {
    assert.equal(bypasses(' a.example ,  b.example\tc.example ', 'c.example'), true);
    assert.equal(bypasses(['a.example', ' b.example '], 'b.example'), true);
  });

  test('entries that are none of the forms are reported, and otherwise ignored', () => {
    const invalid: string[] = [];
    const list = NoProxy.parse(['ok.example', '10.0.0.0/99', 'bad host', 'x:notaport', 'y.example:0', '[zz]', '1.2.3.4/x', 'a..b'], (entry, index, why) => invalid.push(`${index} ${entry}: ${why}`));
    assert.deepEqual(
      invalid.map((line) => line.split(':')[0]),
      ['1 10.0.0.0/99', '2 bad host', '3 x', '4 y.example', '5 [zz]', '6 1.2.3.4/x', '7 a..b'],
    );
    assert.equal(list.bypasses('ok.example', 443), true);
    assert.equal(list.bypasses('10.0.0.1', 443), false);
    assert.deepEqual(list.entries.length, 8, 'the list is kept as given, for logs');
    // Without a reporter (the environment), nothing throws.
    assert.equal(NoProxy.parse('10.0.0.0/99,ok.example').bypasses('ok.example', 443), true);
  });
});
