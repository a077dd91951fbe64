using System.CommandLine;
using Limen.Cli;

// Signals are left to each command: `serve` drains requests through the ASP.NET Core host.
return await LimenCli.Create().Parse(args).InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
