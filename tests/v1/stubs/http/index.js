// Node's built-in module: require('http') resolves to it before node_modules, so this file is never loaded.
module.exports = require('node:http');
