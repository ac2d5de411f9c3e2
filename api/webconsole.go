package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/roster-registry/roster/auth"
)

// The web console's routes (Roster's own console; console.go has the endpoints that
// Nacos' console calls). Its files come from Config.Console (the console package,
// which server hands in); this package only places them and guards them like any route.
const (
	consolePublic = "/console/*"
	consoleApp    = "/console/app/"
	// consoleTokenCookie is the cookie the console's sign-in script sets, for the path
	// consoleApp alone, so that the browser can load the console's modules; it is read
	// on those routes only, never as a credential for the API.
	consoleTokenCookie = "roster_console_token"
)

func (a *API) webConsoleRoutes(r chi.Router) {
	if a.cfg.Console == nil {
		return
	}
	toConsole := func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusFound)
	}
	r.Get("/", toConsole)
	r.Get("/console", toConsole)
	r.Get(consolePublic, a.cfg.Console.ServeHTTP)
	r.Get(consoleApp+"*", a.cfg.Console.ServeHTTP)
}

// consoleCredentials adds the console's cookie to a request for its modules when the
// request carries no token otherwise (a browser's module loads cannot set headers).
func consoleCredentials(r *http.Request, c auth.Credentials) auth.Credentials {
	if c.AccessToken != "" || c.Bearer != "" {
		return c
	}
	if ck, err := r.Cookie(consoleTokenCookie); err == nil {
		c.AccessToken = ck.Value
	}
	return c
}
