// The API reference page: Swagger UI, from the studio's own copy, reading the studio's document.
// "Try it out" sends the page's session and its security token, as every page's own requests do.

function start() {
  const root = document.getElementById("swagger-ui");
  const token = document.querySelector('meta[name="csrf-token"]')?.content || "";
  window.SwaggerUIBundle({
    url: root.dataset.spec,
    domNode: root,
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    tryItOutEnabled: false,
    requestInterceptor: (request) => {
      request.headers["X-CSRF-Token"] = token;
      return request;
    },
  });
}

// swagger-ui-bundle.js is a classic deferred script: it has run once the document is parsed, as this module has.
if (window.SwaggerUIBundle) start();
else window.addEventListener("load", start);
