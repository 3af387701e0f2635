// Option metadata: the one declaration of every request field (train, evaluate, synthesize) and of every
// method-specific prediction option. A method declares its fields once (name, type, default, range, choices,
// one-line doc); from that one list the core derives the defaults a front end shows, the metadata that labels
// and validates its form fields, and the check of a request before any work (unknown fields, types, ranges).
// No LibTorch here.
#pragma once
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cellcount {

struct OptionSpec {
  std::string name;
  // "int", "number", "bool", "string", "choice" (one of `choices`), "path" (a file or folder; "" = none),
  // "int_list", "number_list", "string_list", "object" (a JSON object merged over the default, e.g. an
  // architecture), "json" (any JSON value, checked by the method).
  std::string type;
  nlohmann::json default_value;
  nlohmann::json min = nullptr, max = nullptr;  // inclusive bounds of numbers (and of list elements)
  std::vector<std::string> choices;
  std::string doc;                               // one line, shown as the field's help
  bool advanced = false;                         // folded away in front-end forms
  bool nullable = false;                         // null = "not given" (the model's or the method's value)
  bool required = false;                         // a request must give it (non-empty)

  // Terse, chainable declarations: Opt::integer("epochs", 100).range(1, 100000).help("...").
  OptionSpec& range(nlohmann::json lo, nlohmann::json hi) {
    min = std::move(lo);
    max = std::move(hi);
    return *this;
  }
  OptionSpec& at_least(nlohmann::json lo) {
    min = std::move(lo);
    return *this;
  }
  OptionSpec& help(std::string d) {
    doc = std::move(d);
    return *this;
  }
  OptionSpec& folded() {
    advanced = true;
    return *this;
  }
  OptionSpec& needed() {
    required = true;
    return *this;
  }
  OptionSpec& or_null() {
    nullable = true;
    return *this;
  }
};

using Options = std::vector<OptionSpec>;

namespace Opt {
OptionSpec integer(std::string name, int64_t def);
OptionSpec number(std::string name, double def);
OptionSpec boolean(std::string name, bool def);
OptionSpec string(std::string name, std::string def);
OptionSpec path(std::string name, std::string def = "");
OptionSpec choice(std::string name, std::string def, std::vector<std::string> choices);
OptionSpec int_list(std::string name, std::vector<int64_t> def);
OptionSpec number_list(std::string name, std::vector<double> def);
OptionSpec string_list(std::string name, std::vector<std::string> def);
OptionSpec object(std::string name, nlohmann::json def);
OptionSpec any(std::string name, nlohmann::json def);
}  // namespace Opt

// {name: default} of every option, in declaration order.
nlohmann::json option_defaults(const Options& options);
// [{name, type, default, min, max, choices, doc, advanced, nullable, required}] (absent keys: not applicable).
nlohmann::json option_metadata(const Options& options);
// The option named `name`, or nullptr.
const OptionSpec* find_option(const Options& options, const std::string& name);
// `options` with the default of `name` replaced (a method's own default of a shared field). Throws
// std::logic_error when there is no such option (a programming error, caught by the tests).
Options& set_default(Options& options, const std::string& name, nlohmann::json value);
// Appends `more`, replacing options of the same name (a method's version of a shared field).
Options& add_options(Options& options, const Options& more);

// Checks `request` against the declared options and returns the defaults updated by it. Refused with
// CELLCOUNT_ERR_INVALID_ARGUMENT, naming `context` and the field: a request that is not an object, an
// unknown field (the known ones listed), a value of the wrong type (1.5 for an int, a string for a number),
// a number outside its range, a string outside its choices, required fields left empty (all of them named). "object" options are merged over their default
// (a partial architecture keeps the other fields).
nlohmann::json resolve_options(const std::string& context, const Options& options, const nlohmann::json& request);

// Checks one value against its option (what resolve_options does per field).
void check_option_value(const std::string& context, const OptionSpec& option, const nlohmann::json& value);

// One place where a setting is resolved: the caller's value when given (non-null; checked), else the model's
// (model.json, when present and non-null), else the option's declared default.
nlohmann::json resolve_setting(const std::string& context, const OptionSpec& option, const nlohmann::json& caller,
                               const nlohmann::json& model_value);

// A model.json section read into a method's structure: every field of `given` that `reference` (the structure's
// defaults as JSON) also has must be of the reference's JSON type (any number for a number; objects recursively),
// so that a field of the wrong type is named instead of the JSON library's "type must be number, but is string":
// CELLCOUNT_ERR_MODEL_FORMAT 'model.json field "<where>.<field>": expected a number, got a string'. Fields the
// reference lacks are left to the reader.
void check_field_types(const nlohmann::json& given, const nlohmann::json& reference, const std::string& where);

}  // namespace cellcount
