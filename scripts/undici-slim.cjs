'use strict'
// The part of undici that bearer-sidecar uses, for the CLI bundle only (scripts/bundle.mjs maps
// `undici` here). undici's own index also loads fetch, WebSocket, EventSource, its caches, cookies,
// mocks and proxy agents, which the sidecar never uses (its outbound proxies are src/outbound/'s,
// on Client and buildConnector): about 75 ms of every start here (require of the index 127 ms, of
// these modules 52 ms) and a few MB of memory. The modules below are the
// same files the index loads, so the classes are the very same (test/deploy/bundle.test.ts checks
// that every name src/ imports from undici is exported here, identical to undici's own).

const Dispatcher = require('undici/lib/dispatcher/dispatcher')
const api = require('undici/lib/api')
const Pool = require('undici/lib/dispatcher/pool')
const Client = require('undici/lib/dispatcher/client')
const Agent = require('undici/lib/dispatcher/agent')
const errors = require('undici/lib/core/errors')
const util = require('undici/lib/core/util')
const buildConnector = require('undici/lib/core/connect')
const { getGlobalDispatcher } = require('undici/lib/global')

// What undici's index does for every dispatcher: request(), stream(), pipeline()... as methods.
Object.assign(Dispatcher.prototype, api)

/** undici's top-level request(url, options), as its index defines it, for absolute URLs. */
function request (url, opts) {
  const { dispatcher = getGlobalDispatcher(), ...rest } = opts ?? {}
  const parsed = util.parseURL(url)
  return api.request.call(dispatcher, {
    ...rest,
    origin: parsed.origin,
    path: parsed.search ? `${parsed.pathname}${parsed.search}` : parsed.pathname,
    method: rest.method || (rest.body ? 'PUT' : 'GET')
  })
}

module.exports = { Dispatcher, Pool, Client, Agent, errors, request, buildConnector }
