package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/roster-registry/roster/naming"
)

// version is one generation of Nacos' HTTP API. A handler served under /nacos/v1,
// /nacos/v2 and the Nacos 3 admin API (/nacos/v3/admin) parses the request and calls the
// registry once; its version decides how it answers: v1 bare (text "ok", the data as
// JSON, failures as text), v2 and v3 in Nacos' Result envelope {"code","message","data"}
// (api/model/v2/Result.java) with the error table below. The few things Nacos' v2 and
// v3 controllers read differently from v1 (parameter names, defaults, the wording of a
// missing parameter) and the v3 answers' own shapes are asked of the version too.
type version struct {
	// v2 is set for the Open API v2 and for the v3 admin API, which binds v2's forms
	// and answers in the same envelope and error table.
	v2 bool
	// v3 is the Nacos 3 admin API (naming/controllers/v3, core/controller/v3): its
	// answers are the maintainer model classes (api/naming/pojo/maintainer).
	v3 bool
}

var (
	apiV1 = &version{}
	apiV2 = &version{v2: true}
	apiV3 = &version{v2: true, v3: true}
)

// v2Prefix is where the v2 API's routes live (naming, core and console); v3Prefix the
// Nacos 3 admin and auth routes.
const (
	v2Prefix = "/nacos/v2/"
	v3Prefix = "/nacos/v3/"
)

// versionOf is the version of the route a request is for.
func versionOf(r *http.Request) *version {
	switch {
	case strings.HasPrefix(r.URL.Path, v2Prefix):
		return apiV2
	case strings.HasPrefix(r.URL.Path, v3Prefix):
		return apiV3
	}
	return apiV1
}

// result is the v2 envelope. data is null when there is none, as Jackson writes it.
type result struct {
	Code    naming.Code `json:"code"`
	Message string      `json:"message"`
	Data    any         `json:"data"`
}

func success(data any) result { return result{Code: 0, Message: "success", Data: data} }

func writeResult(w http.ResponseWriter, status int, res result) {
	b, err := naming.Marshal(res)
	if err != nil {
		b, _ = naming.Marshal(result{Code: naming.CodeServerError, Message: "answer could not be encoded"})
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// ok answers a write that succeeded: "ok", or a v2 Result whose data is "ok".
func (v *version) ok(w http.ResponseWriter) error {
	if v.v2 {
		writeResult(w, http.StatusOK, success("ok"))
		return nil
	}
	writeText(w, http.StatusOK, "ok")
	return nil
}

// data answers a read: d as JSON, or a v2 Result carrying d.
func (v *version) data(w http.ResponseWriter, d any) error {
	if v.v2 {
		b, err := naming.Marshal(success(d))
		if err != nil {
			return err
		}
		return writeRaw(w, b)
	}
	return writeJSON(w, d)
}

// encoded is data for an answer already encoded as JSON (the cached instance lists).
func (v *version) encoded(w http.ResponseWriter, body []byte) error {
	if !v.v2 {
		return writeRaw(w, body)
	}
	const head = `{"code":0,"message":"success","data":`
	b := make([]byte, 0, len(head)+len(body)+1)
	b = append(append(append(b, head...), body...), '}')
	return writeRaw(w, b)
}

func writeRaw(w http.ResponseWriter, b []byte) error {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}

// missing says how a shared handler words a missing required parameter. Nacos' v1
// controllers read it with WebUtils.required ("Param 'ip' is required.") or, on the
// service endpoints, with Spring's @RequestParam ("Parameter 'serviceName' is missing");
// its v2 controllers bind a form and say "Required parameter 'ip' type String is not
// present", or take a @RequestParam and answer Spring 5.3's text.
type missing struct {
	v1Spring bool // v1 reads the parameter with @RequestParam
	v2Spring bool // v2 reads it with @RequestParam (else a form field)
}

var (
	formField    = missing{}                               // v1 WebUtils.required, v2 a form field
	queryParam   = missing{v2Spring: true}                 // v1 WebUtils.required, v2 @RequestParam
	serviceField = missing{v1Spring: true}                 // v1 @RequestParam, v2 a form field
	serviceParam = missing{v1Spring: true, v2Spring: true} // @RequestParam in both
)

// required is the refusal of the missing parameter name (of Java type javaType). Every
// v3 naming controller binds a form (InstanceForm, ServiceForm, …), so v3 always words
// it as a form field.
func (v *version) required(m missing, name, javaType string) *naming.Error {
	switch {
	case v.v3:
		return naming.MissingField(name, javaType)
	case v.v2 && m.v2Spring:
		return naming.MissingRequestParam(name, javaType)
	case v.v2:
		return naming.MissingField(name, javaType)
	case m.v1Spring:
		return naming.MissingParameter(name)
	}
	return naming.RequiredParam(name)
}

// requiredString is required for a String parameter, in the shape params.service takes.
func (v *version) requiredString(m missing) func(string) *naming.Error {
	return func(name string) *naming.Error { return v.required(m, name, "String") }
}

// serve runs a handler of this version and answers its failure in this version's table.
func (a *API) serve(v *version, h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			a.fail(v, w, r, err)
		}
	}
}

// okWrite serves a write that answers v's ok: apply reads the request's parameters and
// makes the change.
func (a *API) okWrite(v *version, apply func(r *http.Request, p params) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p, err := readParams(r)
		if err != nil {
			return err
		}
		if err := apply(r, p); err != nil {
			return err
		}
		return v.ok(w)
	}
}

// fail answers a failure in v's error table.
func (a *API) fail(v *version, w http.ResponseWriter, r *http.Request, err error) {
	if v.v2 {
		a.writeErrorV2(w, r, err)
		return
	}
	a.writeError(w, r, err)
}

// writeErrorV2 is the v2 front's one table from errors to answers, as Nacos'
// NacosApiExceptionHandler answers them:
//
//   - a parameter check failure: its status and text, plain, as v1 (Nacos' checker is a
//     servlet filter that answers before the v2 handler);
//   - a *naming.Error with a Code (Nacos raises a NacosApiException): its status,
//     {code, the code's summary, the text};
//   - any other *naming.Error (a NacosException or NacosRuntimeException): its status,
//     {30000, "server error", the text};
//   - an oversized body: 413, {30000, "server error", the limit};
//   - anything else: 500, {30000, "internal error (request id …)", null}, logged once, as
//     Nacos answers an unexpected exception (Result.failure(message)).
func (a *API) writeErrorV2(w http.ResponseWriter, r *http.Request, err error) {
	var ne *naming.Error
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &ne) && ne.ParamCheck:
		writeText(w, ne.Status, ne.Message)
	case errors.As(err, &ne):
		code := ne.Code
		if code == 0 {
			code = naming.CodeServerError
		}
		writeResult(w, ne.Status, result{Code: code, Message: code.Summary(), Data: ne.Message})
	case errors.As(err, &tooBig):
		writeResult(w, http.StatusRequestEntityTooLarge, result{Code: naming.CodeServerError, Message: naming.CodeServerError.Summary(),
			Data: fmt.Sprintf("request body exceeds the limit of %d bytes", tooBig.Limit)})
	default:
		id := middleware.GetReqID(r.Context())
		a.log.Error("request failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
		writeResult(w, http.StatusInternalServerError, result{Code: naming.CodeServerError, Message: "internal error (request id " + id + ")"})
	}
}

// deny answers an access refusal (403, or 429 for too many failed logins): Nacos'
// text on v1; on v2 the envelope with ACCESS_DENIED around the same text, as Nacos' v2
// handler answers an AccessException. The v3 admin API is guarded by Nacos 3's
// AuthAdminFilter, a servlet filter that answers with sendError(403, text) before any
// controller, so v3 refusals are the plain text as on v1.
func deny(w http.ResponseWriter, r *http.Request, status int, text string) {
	if v := versionOf(r); v.v2 && !v.v3 {
		writeResult(w, status, result{Code: naming.CodeAccessDenied, Message: naming.CodeAccessDenied.Summary(), Data: text})
		return
	}
	writeText(w, status, text)
}
