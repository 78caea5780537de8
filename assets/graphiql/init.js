// Warden's GraphiQL page: mounts the GraphiQL component (graphiql.min.js,
// React and ReactDOM are loaded before this file, all from Warden itself).
// Served as a file so the page's Content-Security-Policy needs no inline
// script. Headers, variables and responses are never persisted: an access
// token pasted into the headers editor lives only as long as the tab.
(function () {
  'use strict';

  var root = document.getElementById('graphiql');
  var endpoint = new URL(root.getAttribute('data-endpoint') || '/graphql', window.location.href).href;
  var PLACEHOLDER = '<paste the accessToken from login>';

  var defaultQuery = [
    '# Warden: log in (or register) with the Login operation below, then copy',
    '# data.login.accessToken into the Authorization header (Headers tab below)',
    '# and run Me. Headers are not saved: reloading the page forgets the token.',
    '',
    'mutation Login($input: LoginInput!) {',
    '  login(input: $input) {',
    '    accessToken',
    '    expiresIn',
    '    user { id email role }',
    '  }',
    '}',
    '',
    'query Me {',
    '  me { id email username role createdAt lastLoginAt }',
    '}',
    '',
  ].join('\n');
  var defaultVariables = JSON.stringify({ input: { email: 'you@example.com', password: '' } }, null, 2);
  var defaultHeaders = JSON.stringify({ Authorization: 'Bearer ' + PLACEHOLDER }, null, 2);

  var base = GraphiQL.createFetcher({ url: endpoint });
  // While the Authorization header still holds the placeholder (or nothing
  // after "Bearer"), it is left off, so the operations that need no token
  // (login, register, introspection) run as they are.
  function fetcher(params, options) {
    var headers = Object.assign({}, (options && options.headers) || {});
    Object.keys(headers).forEach(function (name) {
      if (name.toLowerCase() !== 'authorization') return;
      var value = String(headers[name]).trim();
      if (value.indexOf(PLACEHOLDER) !== -1 || /^bearer$/i.test(value) || value === '') {
        delete headers[name];
      }
    });
    return base(params, Object.assign({}, options, { headers: headers }));
  }

  // What GraphiQL saves in localStorage (tabs, history) keeps its queries
  // and titles but never headers (access tokens), variables (passwords,
  // refresh tokens) or responses (tokens again). GraphiQL's own
  // shouldPersistHeaders=false still writes headers into its history.
  var SECRET_KEYS = { headers: true, variables: true, response: true };
  function scrub(value) {
    var parsed;
    try {
      parsed = JSON.parse(value);
    } catch (e) {
      return value;
    }
    return JSON.stringify(parsed, function (key, inner) {
      return Object.prototype.hasOwnProperty.call(SECRET_KEYS, key) ? null : inner;
    });
  }
  var local = window.localStorage;
  var storage = {
    getItem: function (key) { return local.getItem(key); },
    setItem: function (key, value) {
      if (/:(headers|variables)$/.test(key)) return local.removeItem(key);
      return local.setItem(key, scrub(String(value)));
    },
    removeItem: function (key) { return local.removeItem(key); },
    clear: function () {
      Object.keys(local).filter(function (key) { return key.indexOf('graphiql:') === 0; })
        .forEach(function (key) { local.removeItem(key); });
    },
    key: function (index) { return local.key(index); },
    get length() { return local.length; },
  };

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultHeaders: defaultHeaders,
      variables: defaultVariables,
      defaultEditorToolsVisibility: 'headers',
      shouldPersistHeaders: false,
      storage: storage,
    })
  );
})();
