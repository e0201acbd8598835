// ESLint (flat config) for the TypeScript: a small set of rules that find bugs, not taste, and the
// house limits on size. No style rules: layout is the author's, and a rule that touches every line
// would make every merge hard. `npm run lint` runs it (first step of `npm test`); `npm run lint --
// --fix` fixes what can be fixed mechanically. docs/CONTRIBUTING.md says why each rule is here.
import { defineConfig } from 'eslint/config'
import globals from 'globals'
import tseslint from 'typescript-eslint'

// Bugs the type checker does not see.
const bugRules = {
  // A promise nobody awaits or catches: its rejection is an unhandled rejection, which ends the process.
  '@typescript-eslint/no-floating-promises': 'error',
  // A promise where a boolean or a void callback is expected (`if (p)`, `emitter.on('x', async …)`).
  '@typescript-eslint/no-misused-promises': 'error',
  // `await` on something that is not a promise: usually a missing call or a sync API taken for an async one.
  '@typescript-eslint/await-thenable': 'error',
  // A value that is never read: a forgotten use or dead code. `_name` says "unused on purpose".
  '@typescript-eslint/no-unused-vars': ['error', {
    args: 'after-used', argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none',
    destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true
  }],
  // `x as T` where x is a T already: noise that hides the assertions that matter.
  '@typescript-eslint/no-unnecessary-type-assertion': 'error',
  // `==` coerces ('' == 0); `== null` is the one idiom kept (null or undefined).
  eqeqeq: ['error', 'always', { null: 'ignore' }],
  'no-var': 'error',
  'prefer-const': ['error', { destructuring: 'all' }],
  // A case that falls into the next without a `// falls through` comment.
  'no-fallthrough': 'error',
  // `if (1)`, `while (x = y)`-style constants; `while (true)` loops with a break are fine.
  'no-constant-condition': ['error', { checkLoops: false }],
  // `a === b || c` where a part can never change the result (`x ?? y` on a non-nullable x, `!a === b`).
  'no-constant-binary-expression': 'error',
  // A return/throw in `finally` swallows the error of the `try`.
  'no-unsafe-finally': 'error',
  'no-dupe-keys': 'error',
  'no-duplicate-case': 'error',
  'no-dupe-else-if': 'error',
  'no-self-assign': 'error',
  'no-self-compare': 'error',
  'no-unreachable': 'error',
  'no-cond-assign': 'error',
  'no-async-promise-executor': 'error',
  'no-sparse-arrays': 'error',
  'no-unsafe-negation': 'error',
  'no-unsafe-optional-chaining': 'error',
  'use-isnan': 'error',
  'valid-typeof': 'error',
  'no-empty-pattern': 'error',
  'no-loss-of-precision': 'error',
  'no-useless-catch': 'error',
  // A control character in a regular expression is usually a typo for a printable one.
  'no-control-regex': 'error',
  // `require()` gives `any`: an import is typed. The few needed (optional native modules) say why.
  '@typescript-eslint/no-require-imports': 'error'
}

// The house limits (docs/CONTRIBUTING.md): raw lines, as `wc -l` counts them, blank lines and comments
// included; a function's lines from its first to its last, nested functions and IIFEs included.
const sizeRules = {
  'max-lines': ['error', { max: 400, skipBlankLines: false, skipComments: false }],
  'max-lines-per-function': ['error', { max: 80, skipBlankLines: false, skipComments: false, IIFEs: true }]
}

export default defineConfig(
  { ignores: ['dist/**', 'node_modules/**', 'build/**', '**/*.js', '**/*.mjs', '**/*.cjs', '**/*.d.ts'] },
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      // Each file is typed by its own tsconfig (src/ui has a browser one), as the editor types it.
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname }
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: bugRules
  },
  // Node's globals everywhere but the web console, which runs in the browser (globals merge: hence the ignores).
  { files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'], ignores: ['src/ui/**'], languageOptions: { globals: globals.node } },
  { files: ['src/ui/**/*.ts'], languageOptions: { globals: globals.browser } },
  { files: ['src/**/*.ts'], rules: sizeRules },
  // Tests match terminal escapes and control characters on purpose.
  { files: ['test/**/*.ts'], rules: { 'no-control-regex': 'off' } }
)
